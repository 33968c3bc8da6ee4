import { startApi } from '../api/server';
import { closeSteps, openContext } from './compose';
import { main, requireSharedTransport } from './main';

main('api', {}, async ({ config, logger }) => {
  requireSharedTransport(config);
  const ctx = await openContext(config, logger, 'api');
  const api = await startApi(ctx);
  return [{ name: 'stop http', run: () => api.stop() }, ...closeSteps(ctx)];
});
