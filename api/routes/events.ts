import type Router from '@koa/router';
import { TASK_TYPE_PATTERN } from '../../protocol/names';
import { checkKnown, encodeCursor, parseCursor, parseLimit, parsePattern, Query } from '../query';
import { lastEventId, openEventStream, wantsEventStream } from '../sse';
import type { TaskService } from '../task-service';
import { eventView } from '../views';
import type { WatchHub } from '../watch-hub';

/**
 * `GET /events?type=`: every task's events, for dashboards. As JSON, the stored ones after `cursor`; as
 * server-sent events, those after Last-Event-ID (or `cursor`, or from now on), each as it is announced
 * (see WatchHub.streamAll for the one way it can miss an event; a task's own stream cannot).
 */
export function addEventRoutes(router: Router, service: TaskService, hub: WatchHub): void {
  router.get('/events', async (ctx) => {
    const q = ctx.query as Query;
    checkKnown(q, ['type', 'limit', 'cursor']);
    const type = parsePattern(q, 'type', TASK_TYPE_PATTERN, 'a task type');
    if (type !== null) service.requireType(type);
    if (!wantsEventStream(ctx)) {
      const page = await service.allEvents(type, parseCursor(q) ?? 0, parseLimit(q, 1000, 5000));
      ctx.body = { events: page.items.map(eventView), next_cursor: page.next === null ? null : encodeCursor(page.next) };
      return;
    }
    // From where the client left off, or from now on.
    const from = lastEventId(ctx) ?? parseCursor(q) ?? await service.lastEventId();
    let stop = (): void => undefined;
    const sink = openEventStream(ctx, () => stop());
    stop = hub.streamAll(type, from, sink);
  });
}
