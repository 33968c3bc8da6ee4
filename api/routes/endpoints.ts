import type Router from '@koa/router';
import { ENDPOINT_PATTERN, TASK_TYPE_PATTERN } from '../../protocol/names';
import type { EndpointService } from '../endpoint-service';
import { checkKnown, encodeCursor, parseCursor, parseEnum, parseLimit, parseNameCursor, parsePattern, parseTime, Query } from '../query';
import { SHOWN_STATES } from '../storage/entities/task-response';
import { responseView } from '../views';
import { NotFoundError } from '../../lib/errors';

/** `GET /endpoints`: the registry; `GET /endpoints/<name>/responses`: what an endpoint did, newest task first. */
export function addEndpointRoutes(router: Router, service: EndpointService, taskTypes: readonly string[]): void {

  router.get('/endpoints', async (ctx) => {
    const q = ctx.query as Query;
    checkKnown(q, ['limit', 'cursor']);
    const page = await service.list(parseNameCursor(q) ?? '', parseLimit(q, 100, 1000));
    const now = Date.now();
    ctx.body = {
      endpoints: page.items.map((e) => ({
        name: e.name, task_types: e.task_types, first_seen: e.first_seen.toISOString(), last_heartbeat: e.last_heartbeat.toISOString(),
        alive: service.isAlive(e, now),
      })),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
    };
  });

  router.get('/endpoints/:name/responses', async (ctx) => {
    const q = ctx.query as Query;
    checkKnown(q, ['state', 'type', 'since', 'until', 'limit', 'cursor']);
    const name = ctx.params.name;
    if (!ENDPOINT_PATTERN.test(name)) throw new NotFoundError(`no endpoint '${name}'`);
    const type = parsePattern(q, 'type', TASK_TYPE_PATTERN, 'a task type');
    if (type !== null && !taskTypes.includes(type)) throw new NotFoundError(`unknown task type '${type}'`);
    const page = await service.responses(name, {
      state: parseEnum(q, 'state', SHOWN_STATES), type, since: parseTime(q, 'since'), until: parseTime(q, 'until'),
      after: parseCursor(q), limit: parseLimit(q, 100, 1000),
    });
    ctx.body = {
      responses: page.items.map((r) => ({ type: r.type, identifier: r.identifier, task_status: r.task_status, ...responseView(r, { status: r.task_status }) })),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
    };
  });

}
