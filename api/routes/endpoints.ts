import { NotFoundError } from '../../lib/errors';
import { parseSelector } from '../../protocol/label-selector';
import { ENDPOINT_PATTERN } from '../../protocol/names';
import type { EndpointService } from '../endpoint-service';
import type { ApiRoutes } from '../operation';
import { decodeCursor, decodeNameCursor, decodeTime, encodeCursor } from '../query';
import { actorOf } from '../auth';
import { EndpointListQuery, EndpointPage, EndpointRemoveQuery, EndpointResponsePage, EndpointResponsesQuery, RemovedEndpoint } from '../schemas';
import { responseView } from '../views';
import { answers, ENDPOINT_PARAMS } from './answers';

/** `GET /endpoints`: the registry; `GET /endpoints/<name>/responses`: what an endpoint did, newest task first. */
export function addEndpointRoutes(routes: ApiRoutes, service: EndpointService, taskTypes: readonly string[]): void {

  routes.add({
    id: 'listEndpoints', method: 'get', path: '/endpoints', tag: 'endpoints', scope: 'read',
    summary: 'The endpoints that registered, by name, with their last heartbeat, labels and facts, and whether they wait for a server side', query: EndpointListQuery,
    description: 'With `selector`, only those whose labels and facts match it (live or not; `stale` says which), and `count`: how many match in all. '
      + '400 `bad_selector` with the `position` of the offending character.',
    answers: answers({ 200: { description: 'a page of endpoints', schema: EndpointPage } }, [400]),
  }, async (ctx, { query: q }) => {
    const after = decodeNameCursor(q.cursor) ?? '';
    const limit = q.limit ?? 100;
    const page = q.selector === undefined ? await service.list(after, limit) : await service.matching(parseSelector(q.selector), after, limit);
    const now = await service.now();
    ctx.body = {
      endpoints: page.items.map((e) => ({
        name: e.name, task_types: e.task_types, first_seen: e.first_seen.toISOString(), last_heartbeat: e.last_heartbeat.toISOString(),
        alive: service.isAlive(e, now), stale: service.isStale(e, now), waiting_since: e.waiting_since?.toISOString() ?? null,
        labels: e.labels, facts: e.facts,
      })),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
      ...('count' in page ? { count: page.count } : {}),
    };
  });

  routes.add({
    id: 'listEndpointResponses', method: 'get', path: '/endpoints/:name/responses', tag: 'endpoints', scope: 'read',
    summary: 'What an endpoint did, newest task first', params: ENDPOINT_PARAMS, query: EndpointResponsesQuery,
    answers: answers({ 200: { description: 'a page of the endpoint\'s responses', schema: EndpointResponsePage } }, [400, 404]),
  }, async (ctx, { query: q }) => {
    const name = ctx.params.name;
    if (!ENDPOINT_PATTERN.test(name)) throw new NotFoundError(`no endpoint '${name}'`);
    const type = q.type ?? null;
    if (type !== null && !taskTypes.includes(type)) throw new NotFoundError(`unknown task type '${type}'`);
    const page = await service.responses(name, {
      state: q.state ?? null, type, since: decodeTime(q.since, 'since'), until: decodeTime(q.until, 'until'),
      after: decodeCursor(q.cursor), limit: q.limit ?? 100,
    });
    ctx.body = {
      responses: page.items.map((r) => ({ type: r.type, identifier: r.identifier, task_status: r.task_status, ...responseView(r, { status: r.task_status }) })),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
    };
  });

  routes.add({
    id: 'removeEndpoint', method: 'delete', path: '/endpoints/:name', tag: 'endpoints', scope: 'admin',
    summary: 'Remove an endpoint: its open responses cancelled, its queues deleted, its registry entry gone',
    description: '409 `endpoint_running`: a handler of it is running a task (`force=true` cancels that response too and tells the handler to abort). '
      + 'Its past responses stay. Should it connect again, it registers again as a new endpoint.',
    params: ENDPOINT_PARAMS, query: EndpointRemoveQuery,
    answers: answers({ 200: { description: 'removed', schema: RemovedEndpoint } }, [400, 404, 409]),
  }, async (ctx, { query: q }) => {
    const name = ctx.params.name;
    if (!ENDPOINT_PATTERN.test(name)) throw new NotFoundError(`no endpoint '${name}'`);
    ctx.body = await service.remove(name, q.force === true, actorOf(ctx));
  });
}
