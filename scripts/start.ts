import { startApi } from '../api/server';
import { closeSteps, managerShutdownSteps, openContext, startEndpointManagers } from './compose';
import { main } from './main';

/**
 * `npm start [-- --mode M]`: the API and every endpoint manager of `manager.endpoints`, in one process.
 * Without a mode it runs `standalone` (SQLite, in-process queues): nothing else to install.
 */
main('tasker', {}, async ({ config, logger }) => {
  const ctx = await openContext(config, logger, 'all-in-one');
  const managers = await startEndpointManagers(ctx, config.manager.endpoints);
  const api = await startApi(ctx);
  const endpoints = config.manager.endpoints.map((e) => `${e.name} (${e.task_types.join(', ')})`).join('; ');
  const storage = config.manager.db.uri.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  process.stdout.write(`tasker (${config.mode} mode) listening on http://${config.api.host}:${api.port}\n`
    + `  endpoint managers: ${endpoints || 'none'}\n`
    + `  storage: ${storage}; transport: ${config.manager.transport}\n`
    + '  Ctrl-C stops it.\n');
  return [
    { name: 'stop http', run: () => api.stop() },
    ...managerShutdownSteps(ctx, managers),
    ...closeSteps(ctx),
  ];
}, 'standalone');
