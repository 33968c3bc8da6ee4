import type Router from '@koa/router';
import type { Context } from 'koa';
import { readJsonBody } from '../body';
import { OperationsService, parseIdempotencyKey, parseRetryRequest } from '../operations-service';
import { checkKnown, encodeCursor, parseCursor, parseEnum, parseLimit, parsePattern, parseTime, parseWait, Query } from '../query';
import { lastEventId, openEventStream, wantsEventStream } from '../sse';
import { TASK_STATUSES } from '../storage/entities/task';
import { SHOWN_STATES } from '../storage/entities/task-response';
import { TaskService } from '../task-service';
import { eventView, responseView, taskView } from '../views';
import type { WatchHub } from '../watch-hub';
import { ENDPOINT_PATTERN } from '../../protocol/names';

export interface TasksRouterDeps {
  service: TaskService;
  operations: OperationsService;
  hub: WatchHub;
  bodyLimit: number;
  /** Who is asking, for the history (an operator's token once there is auth). */
  actor: (ctx: Context) => string | null;
}

const PREFIX = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The routes of tasks. The seed's `POST /<task_type>` and `GET /<task_type>/<identifier>` keep their shape;
 * the rest is for operating broadcasts: find, page the responses, wait, watch, retry, cancel.
 */
export function addTaskRoutes(router: Router, deps: TasksRouterDeps): void {
  const { service } = deps;

  router.post('/:type', async (ctx) => {
    const body = await readJsonBody(ctx, deps.bodyLimit);
    const { task, created, counts } = await service.create(ctx.params.type, body);
    ctx.status = created ? 201 : 200;
    ctx.body = taskView(task, counts);
  });

  router.get('/:type', async (ctx) => {
    service.requireType(ctx.params.type);
    const q = ctx.query as Query;
    checkKnown(q, ['status', 'endpoint', 'state', 'since', 'until', 'identifier_prefix', 'limit', 'cursor']);
    const filter = {
      status: parseEnum(q, 'status', TASK_STATUSES),
      endpoint: parsePattern(q, 'endpoint', ENDPOINT_PATTERN, 'an endpoint name'),
      state: parseEnum(q, 'state', SHOWN_STATES),
      since: parseTime(q, 'since'),
      until: parseTime(q, 'until'),
      identifierPrefix: parsePattern(q, 'identifier_prefix', PREFIX, '1-64 characters of A-Z a-z 0-9 . _ : -'),
    };
    const page = await service.list(ctx.params.type, filter, parseCursor(q), parseLimit(q));
    ctx.body = {
      tasks: page.items.map(({ task, counts }) => taskView(task, counts)),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
    };
  });

  router.get('/:type/:identifier', async (ctx) => {
    const q = ctx.query as Query;
    checkKnown(q, ['wait']);
    const wait = parseWait(q);
    const { task, responses } = wait === null
      ? await service.get(ctx.params.type, ctx.params.identifier)
      : await service.getWhenEnded(ctx.params.type, ctx.params.identifier, wait);
    ctx.body = { task: taskView(task, TaskService.countsOf(responses)), taskResponseList: responses.map((r) => responseView(r, task)) };
  });

  router.get('/:type/:identifier/responses', async (ctx) => {
    const q = ctx.query as Query;
    checkKnown(q, ['state', 'limit', 'cursor']);
    const { task, page } = await service.responses(ctx.params.type, ctx.params.identifier, parseEnum(q, 'state', SHOWN_STATES), parseCursor(q), parseLimit(q, 100, 1000));
    ctx.body = { responses: page.items.map((r) => responseView(r, task)), next_cursor: page.next === null ? null : encodeCursor(page.next) };
  });

  router.get('/:type/:identifier/events', async (ctx) => {
    const q = ctx.query as Query;
    checkKnown(q, ['limit', 'cursor']);
    if (wantsEventStream(ctx)) {
      const task = await service.find(ctx.params.type, ctx.params.identifier);
      let stop = (): void => undefined;
      const sink = openEventStream(ctx, () => stop());
      stop = deps.hub.streamTask(task.id, lastEventId(ctx) ?? parseCursor(q) ?? 0, sink);
      return;
    }
    const { page } = await service.events(ctx.params.type, ctx.params.identifier, parseCursor(q) ?? 0, parseLimit(q, 1000, 5000));
    ctx.body = { events: page.items.map(eventView), next_cursor: page.next === null ? null : encodeCursor(page.next) };
  });

  router.post('/:type/:identifier/retry', async (ctx) => {
    checkKnown(ctx.query as Query, []);
    const key = parseIdempotencyKey(ctx.get('idempotency-key') || undefined);
    const selector = parseRetryRequest(await readJsonBody(ctx, deps.bodyLimit));
    const { task, retried } = await deps.operations.retry(ctx.params.type, ctx.params.identifier, selector, key, deps.actor(ctx));
    ctx.body = { task: taskView(task, await service.counts(task)), retried };
  });

  router.post('/:type/:identifier/cancel', async (ctx) => {
    checkKnown(ctx.query as Query, []);
    const task = await deps.operations.cancel(ctx.params.type, ctx.params.identifier, deps.actor(ctx));
    ctx.body = taskView(task, await service.counts(task));
  });

}
