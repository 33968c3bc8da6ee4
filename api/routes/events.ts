import type { ApiRoutes } from '../operation';
import { decodeCursor, encodeCursor } from '../query';
import { AllEventsQuery, EventPage } from '../schemas';
import { admitEventStream, EventStreams, lastEventId, openEventStream, wantsEventStream } from '../sse';
import type { TaskService } from '../task-service';
import { eventView } from '../views';
import type { WatchHub } from '../watch-hub';
import { answers, STREAM_ANSWER } from './answers';

/**
 * `GET /events?type=`: every task's events, for dashboards. As JSON, the stored ones after `cursor`; as
 * server-sent events, those after Last-Event-ID (or `cursor`, or from now on), each as it is announced
 * (see WatchHub.streamAll for the one way it can miss an event; a task's own stream cannot).
 */
export function addEventRoutes(routes: ApiRoutes, service: TaskService, hub: WatchHub, streams: EventStreams): void {
  routes.add({
    id: 'listEvents', method: 'get', path: '/events', tag: 'tasks', scope: 'read',
    summary: 'Every task\'s history; as server-sent events with Accept: text/event-stream', query: AllEventsQuery,
    answers: { ...answers({ 200: { description: 'a page of events, or a stream of them', schema: EventPage, eventStream: true } }, [400, 404]), 503: STREAM_ANSWER },
  }, async (ctx, { query: q }) => {
    const type = q.type ?? null;
    if (type !== null) service.requireType(type);
    if (!wantsEventStream(ctx)) {
      const page = await service.allEvents(type, decodeCursor(q.cursor) ?? 0, q.limit ?? 1000);
      ctx.body = { events: page.items.map(eventView), next_cursor: page.next === null ? null : encodeCursor(page.next) };
      return;
    }
    // From where the client left off, or from now on.
    const from = lastEventId(ctx) ?? decodeCursor(q.cursor) ?? await service.lastEventId();
    const release = admitEventStream(ctx, streams);
    let stop = (): void => undefined;
    const sink = openEventStream(ctx, streams, release, () => stop());
    stop = hub.streamAll(type, from, sink);
  });
}
