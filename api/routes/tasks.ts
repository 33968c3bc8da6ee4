import type { Context } from 'koa';
import { Type } from '@sinclair/typebox';
import { InvalidRequestError } from '../../lib/errors';
import { actorOf } from '../auth';
import type { ApiRoutes } from '../operation';
import type { OperationsService } from '../operations-service';
import { decodeCursor, decodeTime, encodeCursor } from '../query';
import {
  CreateTaskQuery, DryRunAnswer, EventPage, EventsQuery, NoQuery, ResponsePage, ResponsesQuery, RetryAnswer, RetryBody, TaskListQuery, TaskPage,
  TaskQuery, TaskRequestBody, TaskWithResponses,
} from '../schemas';
import { admitEventStream, EventStreams, lastEventId, openEventStream, wantsEventStream } from '../sse';
import { toTaskRequest } from '../task-request';
import { TaskService } from '../task-service';
import { eventView, responseView, taskView } from '../views';
import type { WatchHub } from '../watch-hub';
import { answers, BACKLOG_ANSWER, STREAM_ANSWER, TASK_PARAMS, TYPE_PARAM } from './answers';

export interface TasksRouterDeps {
  service: TaskService;
  operations: OperationsService;
  hub: WatchHub;
  streams: EventStreams;
}

const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;
const IdempotencyKey = Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN.source, description: 'a retry with the same key answers as the first one did and sends nothing' });

function idempotencyKey(ctx: Context): string | null {
  const v = ctx.get('idempotency-key');
  if (v === '') return null;
  if (!IDEMPOTENCY_KEY_PATTERN.test(v)) throw new InvalidRequestError('Idempotency-Key must be 1 to 128 printable ASCII characters');
  return v;
}

/**
 * The routes of tasks. The seed's `POST /<task_type>` and `GET /<task_type>/<identifier>` keep their shape;
 * the rest is for operating broadcasts: find, page the responses, wait, watch, retry, cancel.
 */
export function addTaskRoutes(routes: ApiRoutes, deps: TasksRouterDeps): void {
  const { service } = deps;

  routes.add({
    id: 'createTask', method: 'post', path: '/:type', tag: 'tasks', scope: (p) => `submit:${p.type}`,
    summary: 'Create a task and send it to its endpoints',
    description: 'A repeat with the same identifier and body answers 200 with the stored task and sends nothing; with another body, 409. '
      + 'The endpoints are those listed, those a `selector` matches among the live endpoints of the type (422 `no_matching_endpoints` when none; '
      + '400 `bad_selector` with the `position` of the offending character), or those registered for the type. '
      + '`dry_run=true` answers 200 with the endpoints it would go to and creates nothing.',
    params: TYPE_PARAM, query: CreateTaskQuery, body: TaskRequestBody,
    answers: { ...answers({
      201: { description: 'created and sent (or stored as CREATED: sent when the broker is back, or right after this answer for a task expecting api.background_send_from endpoints or more)', schema: Type.Ref('Task') },
      200: { description: 'an idempotent repeat: the stored task; with dry_run: the endpoints it would go to', schema: Type.Union([Type.Ref('Task'), DryRunAnswer]) },
    }, [400, 404, 409, 413, 415, 422]), 503: BACKLOG_ANSWER },
  }, async (ctx, { query, body }) => {
    const req = toTaskRequest(body);
    if (query.dry_run === true) {
      const endpoints = await service.plan(ctx.params.type, req);
      ctx.body = { dry_run: true, selector: req.selector?.text ?? null, endpoints, count: endpoints.length };
      return;
    }
    const { task, created, counts } = await service.create(ctx.params.type, req, actorOf(ctx));
    ctx.status = created ? 201 : 200;
    ctx.body = taskView(task, counts);
  });

  routes.add({
    id: 'listTasks', method: 'get', path: '/:type', tag: 'tasks', scope: 'read',
    summary: 'Find tasks, newest first', params: TYPE_PARAM, query: TaskListQuery,
    answers: answers({ 200: { description: 'a page of tasks', schema: TaskPage } }, [400, 404]),
  }, async (ctx, { query: q }) => {
    service.requireType(ctx.params.type);
    const filter = {
      status: q.status ?? null, endpoint: q.endpoint ?? null, state: q.state ?? null,
      since: decodeTime(q.since, 'since'), until: decodeTime(q.until, 'until'), identifierPrefix: q.identifier_prefix ?? null,
    };
    const page = await service.list(ctx.params.type, filter, decodeCursor(q.cursor), q.limit ?? 50);
    ctx.body = {
      tasks: page.items.map(({ task, counts }) => taskView(task, counts)),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
    };
  });

  routes.add({
    id: 'getTask', method: 'get', path: '/:type/:identifier', tag: 'tasks', scope: 'read',
    summary: 'A task with the response of every expected endpoint', params: TASK_PARAMS, query: TaskQuery,
    answers: answers({ 200: { description: 'the task (with `wait`: once it ended, or when the wait is over)', schema: TaskWithResponses } }, [400, 404]),
  }, async (ctx, { query }) => {
    const { task, responses } = query.wait === undefined
      ? await service.get(ctx.params.type, ctx.params.identifier)
      : await service.getWhenEnded(ctx.params.type, ctx.params.identifier, query.wait);
    ctx.body = { task: taskView(task, TaskService.countsOf(responses)), taskResponseList: responses.map((r) => responseView(r, task)) };
  });

  routes.add({
    id: 'listTaskResponses', method: 'get', path: '/:type/:identifier/responses', tag: 'tasks', scope: 'read',
    summary: 'Page through a task\'s responses, by endpoint state', params: TASK_PARAMS, query: ResponsesQuery,
    answers: answers({ 200: { description: 'a page of responses', schema: ResponsePage } }, [400, 404]),
  }, async (ctx, { query: q }) => {
    const { task, page } = await service.responses(ctx.params.type, ctx.params.identifier, q.state ?? null, decodeCursor(q.cursor), q.limit ?? 100);
    ctx.body = { responses: page.items.map((r) => responseView(r, task)), next_cursor: page.next === null ? null : encodeCursor(page.next) };
  });

  routes.add({
    id: 'listTaskEvents', method: 'get', path: '/:type/:identifier/events', tag: 'tasks', scope: 'read',
    summary: 'A task\'s history; as server-sent events with Accept: text/event-stream (resumable with Last-Event-ID)',
    params: TASK_PARAMS, query: EventsQuery,
    answers: { ...answers({ 200: { description: 'a page of events, or a stream of them', schema: EventPage, eventStream: true } }, [400, 404]), 503: STREAM_ANSWER },
  }, async (ctx, { query: q }) => {
    if (wantsEventStream(ctx)) {
      const task = await service.find(ctx.params.type, ctx.params.identifier);
      const release = admitEventStream(ctx, deps.streams);
      let stop = (): void => undefined;
      const sink = openEventStream(ctx, deps.streams, release, () => stop());
      stop = deps.hub.streamTask(task.id, lastEventId(ctx) ?? decodeCursor(q.cursor) ?? 0, sink);
      return;
    }
    const { page } = await service.events(ctx.params.type, ctx.params.identifier, decodeCursor(q.cursor) ?? 0, q.limit ?? 1000);
    ctx.body = { events: page.items.map(eventView), next_cursor: page.next === null ? null : encodeCursor(page.next) };
  });

  routes.add({
    id: 'retryTask', method: 'post', path: '/:type/:identifier/retry', tag: 'operations', scope: 'operate',
    summary: 'Send the task again to the failed, missing or unfinished endpoints, or to those named',
    params: TASK_PARAMS, headers: { 'Idempotency-Key': IdempotencyKey }, query: NoQuery, body: RetryBody,
    description: 'Retries and cancels of one task are serialized. 409 `endpoint_running`: a selected endpoint is running the task; '
      + '409 `endpoint_pending`: a selected endpoint\'s current round was sent and has not finished, on a task still open; '
      + '409 `nothing_to_retry`: the selection is empty. With an Idempotency-Key, every repeat answers as the first accepted request did; '
      + '422 `idempotency_key_mismatch`: the key was used with a different body.',
    answers: { ...answers({ 200: { description: 'the task and the endpoints it was sent to again', schema: RetryAnswer } }, [400, 404, 409, 413, 415]), 422: { description: 'idempotency_key_mismatch: the Idempotency-Key was used with a different body; nothing was done', schema: Type.Ref('Error') } },
  }, async (ctx, { body }) => {
    const key = idempotencyKey(ctx);
    const selector = typeof body.endpoints === 'string' ? body.endpoints : [...new Set(body.endpoints)];
    const { task, retried } = await deps.operations.retry(ctx.params.type, ctx.params.identifier, selector, key, actorOf(ctx));
    ctx.body = { task: taskView(task, await service.counts(task)), retried };
  });

  routes.add({
    id: 'cancelTask', method: 'post', path: '/:type/:identifier/cancel', tag: 'operations', scope: 'operate',
    summary: 'Cancel a task: endpoints that have not started skip it, running handlers are told to stop',
    params: TASK_PARAMS, query: NoQuery,
    answers: answers({ 200: { description: 'the task, CANCELLED', schema: Type.Ref('Task') } }, [400, 404, 409]),
  }, async (ctx) => {
    const task = await deps.operations.cancel(ctx.params.type, ctx.params.identifier, actorOf(ctx));
    ctx.body = taskView(task, await service.counts(task));
  });
}
