import { startApi } from '../api/server';
import { closeSteps, openContext } from './compose';
import { main } from './main';

main('api', {}, async ({ config, logger }) => {
  const ctx = await openContext(config, logger, 'api');
  const api = await startApi(ctx);
  return [{ name: 'stop http', run: () => api.stop() }, ...closeSteps(ctx)];
});
