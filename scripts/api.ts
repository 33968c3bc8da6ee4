import { startApi } from '../api/server';
import { packageVersion } from '../config/loader';
import { Connections } from './compose';
import { openDb } from './database';
import { main, requireSharedTransport } from './main';

main('api', {}, async ({ config, logger }) => {
  requireSharedTransport(config);
  const ds = await openDb(config, logger);
  const transport = new Connections(config, logger).server('api', true);
  const api = await startApi({ config, ds, transport, logger, version: packageVersion() });
  return [
    { name: 'stop http', run: () => api.stopHttp() },
    { name: 'stop collector, state responder and jobs', run: () => api.stopBackground() },
    { name: 'close broker connection', run: () => transport.close() },
    { name: 'close database', run: () => ds.destroy() },
  ];
});
