import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../lib/logger';
import type { AccessGuard } from './auth';
import type { EndpointService } from './endpoint-service';
import { errorMiddleware } from './error-middleware';
import type { HealthChecks } from './health';
import { httpMetrics } from './http-metrics';
import type { Metrics } from './metrics';
import { ApiRoutes } from './operation';
import type { OperationsService } from './operations-service';
import { addEndpointRoutes } from './routes/endpoints';
import { addEventRoutes } from './routes/events';
import { addHealthRoutes } from './routes/health';
import { addMetricsRoutes } from './routes/metrics';
import { requestIdMiddleware } from './request-id';
import { addMetaRoutes } from './routes/meta';
import { addScheduleRoutes } from './routes/schedules';
import type { ScheduleService } from './schedule-service';
import { addTaskRoutes } from './routes/tasks';
import { addOutputRoutes } from './routes/output';
import type { OutputStore } from './storage/output-store';
import { addWebhookRoutes } from './routes/webhooks';
import type { WebhookService } from './webhooks/service';
import { limitDbCalls } from './storage/database';
import type { TokenStore } from './storage/token-store';
import type { TaskService } from './task-service';
import { uiMiddleware } from './ui';
import type { WatchHub } from './watch-hub';
import type { EventStreams } from './sse';

export interface AppDeps {
  service: TaskService;
  /** Runs' output lines (GET …/responses/<endpoint>/output). */
  output: OutputStore;
  operations: OperationsService;
  endpoints: EndpointService;
  schedules: ScheduleService;
  webhooks: WebhookService;
  hub: WatchHub;
  /** The event streams' bounds, metrics and log. */
  streams: EventStreams;
  taskTypes: readonly string[];
  bodyLimit: number;
  guard: AccessGuard;
  tokens: TokenStore;
  /** Whether routes need tokens, for the document. */
  auth: boolean;
  version: string;
  logger: Logger;
  /** True once the server is shutting down: responses then close their connection. */
  draining: () => boolean;
  metrics: Metrics;
  health: HealthChecks;
  /** Ms each database call of a request may take before it answers 503 (null: the driver's own limits only). */
  dbCallLimitMs?: number | null;
}

/** The koa application: error mapping, then the routes; a path no route matches is a JSON 404, a method
 * the path does not have a 405. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true; // errors are logged by the error middleware
  // Outermost, so that the error middleware's answers and log lines carry the id too.
  app.use(requestIdMiddleware());
  app.use(httpMetrics(deps.metrics));
  app.use(async (ctx, next) => {
    await next();
    // A keep-alive client must not send its next request on a connection that is about to close.
    if (deps.draining()) ctx.set('Connection', 'close');
  });
  app.use(errorMiddleware(deps.logger));
  const dbLimit = deps.dbCallLimitMs;
  if (dbLimit) app.use((_ctx, next) => limitDbCalls(dbLimit, next));
  app.use(uiMiddleware());
  // One router, so that 405 answers know every route of a path. The fixed paths come first: a task
  // type may not shadow them (the configuration refuses such names).
  const router = new Router();
  const routes = new ApiRoutes(router, deps.guard, deps.bodyLimit);
  addHealthRoutes(routes, deps.health, deps.draining);
  addMetricsRoutes(routes, deps.metrics);
  addMetaRoutes(routes, deps.tokens, { version: deps.version, taskTypes: deps.taskTypes, auth: deps.auth });
  addEndpointRoutes(routes, deps.endpoints, deps.taskTypes);
  addEventRoutes(routes, deps.service, deps.hub, deps.streams);
  addScheduleRoutes(routes, deps.schedules);
  addOutputRoutes(routes, deps.service, deps.output, deps.streams, deps.draining);
  addWebhookRoutes(routes, deps.webhooks);
  addTaskRoutes(routes, { service: deps.service, operations: deps.operations, hub: deps.hub, streams: deps.streams });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
