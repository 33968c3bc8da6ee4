import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../lib/logger';
import type { EndpointService } from './endpoint-service';
import { errorMiddleware } from './error-middleware';
import type { HealthChecks } from './health';
import { httpMetrics } from './http-metrics';
import type { Metrics } from './metrics';
import type { OperationsService } from './operations-service';
import { addEndpointRoutes } from './routes/endpoints';
import { addEventRoutes } from './routes/events';
import { addHealthRoutes } from './routes/health';
import { addMetricsRoutes } from './routes/metrics';
import { addTaskRoutes } from './routes/tasks';
import type { TaskService } from './task-service';
import type { WatchHub } from './watch-hub';

export interface AppDeps {
  service: TaskService;
  operations: OperationsService;
  endpoints: EndpointService;
  hub: WatchHub;
  taskTypes: readonly string[];
  bodyLimit: number;
  logger: Logger;
  /** True once the server is shutting down: responses then close their connection. */
  draining: () => boolean;
  metrics: Metrics;
  health: HealthChecks;
}

/** The koa application: error mapping, then the routes; a path no route matches is a JSON 404, a method
 * the path does not have a 405. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true; // errors are logged by the error middleware
  app.use(httpMetrics(deps.metrics));
  app.use(async (ctx, next) => {
    await next();
    // A keep-alive client must not send its next request on a connection that is about to close.
    if (deps.draining()) ctx.set('Connection', 'close');
  });
  app.use(errorMiddleware(deps.logger));
  // One router, so that 405 answers know every route of a path. The fixed paths come first: a task
  // type may not shadow them (the configuration refuses such names).
  const router = new Router();
  addHealthRoutes(router, deps.health, deps.draining);
  addMetricsRoutes(router, deps.metrics);
  addEndpointRoutes(router, deps.endpoints, deps.taskTypes);
  addEventRoutes(router, deps.service, deps.hub);
  addTaskRoutes(router, { service: deps.service, operations: deps.operations, hub: deps.hub, bodyLimit: deps.bodyLimit, actor: () => null });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
