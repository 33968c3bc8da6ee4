import { startApi } from '../api/server';
import { closeSteps, managerShutdownSteps, openContext, startEndpointManagers } from './compose';
import { main } from './main';

/** `npm start`: the API and every endpoint manager of `manager.endpoints`, in one process. */
main('tasker', {}, async ({ config, logger }) => {
  const ctx = await openContext(config, logger, 'all-in-one');
  const managers = await startEndpointManagers(ctx, config.manager.endpoints);
  const api = await startApi(ctx);
  const endpoints = config.manager.endpoints.map((e) => `${e.name} (${e.task_types.join(', ')})`).join('; ');
  process.stdout.write(`tasker (${config.mode}) listening on http://${config.api.host}:${api.port}\n`
    + `endpoint managers: ${endpoints || 'none'}\nCtrl-C stops it.\n`);
  return [
    { name: 'stop http', run: () => api.stop() },
    ...managerShutdownSteps(ctx, managers),
    ...closeSteps(ctx),
  ];
});
