import Koa from 'koa';
import { NotFoundError } from '../manager/errors';
import type { Logger } from '../manager/logger';
import type { TaskService } from '../manager/task-service';
import { errorMiddleware } from './error-middleware';
import { tasksRouter } from './routes/tasks';

export interface AppDeps {
  service: TaskService;
  bodyLimit: number;
  logger: Logger;
}

/** The koa application: error mapping, then the routes; anything unmatched is a JSON 404 or 405. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true; // errors are logged by the error middleware
  app.use(errorMiddleware(deps.logger));
  const tasks = tasksRouter(deps.service, deps.bodyLimit);
  app.use(tasks.routes());
  app.use(tasks.allowedMethods({ throw: true }));
  app.use(async (ctx) => {
    throw new NotFoundError(`no route for ${ctx.method} ${ctx.path}`);
  });
  return app;
}
