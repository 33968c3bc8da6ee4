import type { ApiClient } from './client';
import { CliError } from './exit-status';
import type { ProgressView } from './progress';
import { readServerSentEvents } from './sse';
import { TaskTracker } from './tracker';
import type { TaskEvent, TaskWithResponses } from './types';

export interface FollowOptions {
  /** Consecutive failed reconnections before giving up (each waits `retryMs` more). */
  reconnects?: number;
  retryMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows a task until it is DONE, INCOMPLETE or CANCELLED, showing its progress: the task as GET answered
 * it, brought up to date by its history so far (read as JSON pages, all applied before anything is drawn,
 * so that the screen never shows an old state), then its live stream of server-sent events from the last
 * event seen, resumed with Last-Event-ID when the connection breaks. Answers the task as a last GET gives it.
 */
export async function followTask(client: ApiClient, snapshot: TaskWithResponses, view: ProgressView, o: FollowOptions = {}): Promise<TaskWithResponses> {
  const { type, identifier } = snapshot.task;
  const tracker = new TaskTracker(snapshot.task, snapshot.taskResponseList);
  const path = [type, identifier, 'events'];

  let cursor: string | null = null;
  do {
    const page: { events: TaskEvent[]; next_cursor: string | null } = await client.json('GET', path, { query: { limit: 5000, cursor: cursor ?? undefined } });
    for (const e of page.events) tracker.apply(e);
    cursor = page.next_cursor;
  } while (cursor !== null);
  view.start(tracker);

  let failures = 0;
  const reconnects = o.reconnects ?? 10;
  while (!tracker.ended) {
    const controller = new AbortController();
    const before = tracker.lastEventId;
    let error: unknown = null;
    try {
      const res = await client.send('GET', path, {
        headers: { accept: 'text/event-stream', 'last-event-id': String(tracker.lastEventId) }, signal: controller.signal,
      });
      for await (const message of readServerSentEvents(res.body as ReadableStream<Uint8Array>)) {
        if (!message.data) continue;
        const event = JSON.parse(message.data) as TaskEvent;
        const changed = tracker.apply(event);
        view.update(tracker, changed, event);
        if (tracker.ended) break;
      }
    } catch (err) {
      error = err;
    } finally {
      controller.abort();
    }
    if (tracker.ended) break;
    // A refusal (401, 404) will not change by asking again; a broken connection or a 503 may.
    if (error instanceof CliError && error.httpStatus !== undefined && error.httpStatus < 500) throw error;
    failures = tracker.lastEventId > before ? 0 : failures + 1;
    if (failures > reconnects) {
      const why = error instanceof Error ? error.message : 'the API closed it';
      throw new CliError(`lost the event stream of ${type}/${identifier}: ${why}`);
    }
    if (failures > 0) await sleep((o.retryMs ?? 500) * failures);
  }

  const final = await client.json<TaskWithResponses>('GET', [type, identifier]);
  view.finish(new TaskTracker(final.task, final.taskResponseList));
  return final;
}
