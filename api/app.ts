import Koa from 'koa';
import type { Logger } from '../lib/logger';
import type { TaskService } from './task-service';
import { errorMiddleware } from './error-middleware';
import { tasksRouter } from './routes/tasks';

export interface AppDeps {
  service: TaskService;
  bodyLimit: number;
  logger: Logger;
  /** True once the server is shutting down: responses then close their connection. */
  draining: () => boolean;
}

/** The koa application: error mapping, then the routes; a path no route matches is a JSON 404, a method
 * the path does not have a 405. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true; // errors are logged by the error middleware
  app.use(async (ctx, next) => {
    await next();
    // A keep-alive client must not send its next request on a connection that is about to close.
    if (deps.draining()) ctx.set('Connection', 'close');
  });
  app.use(errorMiddleware(deps.logger));
  const tasks = tasksRouter(deps.service, deps.bodyLimit);
  app.use(tasks.routes());
  app.use(tasks.allowedMethods({ throw: true }));
  return app;
}
