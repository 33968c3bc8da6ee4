import { startApi } from '../api/server';
import { packageVersion } from '../config/loader';
import { Connections, managerShutdownSteps, startEndpointManagers } from './compose';
import { openDb } from './database';
import { main } from './main';

/**
 * `npm start [-- --mode M]`: the API and every endpoint manager of `manager.endpoints`, in one process.
 * Without a mode it runs `standalone` (SQLite, in-process broker): nothing else to install.
 */
main('tasker', {}, async ({ config, logger }) => {
  const ds = await openDb(config, logger);
  const connections = new Connections(config, logger);
  const transport = connections.server('all-in-one', true);
  const api = await startApi({ config, ds, transport, logger, version: packageVersion(), localEndpoints: config.manager.endpoints.map((e) => e.name) });
  const managers = await startEndpointManagers(config, logger, connections, config.manager.endpoints);
  const endpoints = config.manager.endpoints.map((e) => `${e.name} (${e.task_types.join(', ')})`).join('; ');
  const storage = config.manager.db.uri.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  process.stdout.write(`tasker (${config.mode} mode) listening on http://${config.api.host}:${api.port}\n`
    + `  endpoint managers: ${endpoints || 'none'}\n`
    + `  storage: ${storage}; broker: ${config.manager.transport}\n`
    + (config.api.auth === 'off' ? '  the API is open (api.auth: off): anyone who reaches the port may use it\n' : '  every route but /healthz and /readyz needs a bearer token (api.auth: tokens)\n')
    + '  Ctrl-C stops it.\n');
  // The managers stop before the collector, so that the results of their last tasks are stored.
  return [
    { name: 'stop http', run: () => api.stopHttp() },
    ...managerShutdownSteps(config, managers),
    { name: 'stop collector, state responder and jobs', run: () => api.stopBackground() },
    { name: 'close broker connection', run: () => transport.close() },
    { name: 'close database', run: () => ds.destroy() },
  ];
}, 'standalone', { prettyLogsInTerminal: true });
