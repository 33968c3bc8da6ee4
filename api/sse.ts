import { PassThrough } from 'node:stream';
import type { Context } from 'koa';
import type { StoredEvent } from './storage/history';
import { eventView } from './views';
import type { EventSink } from './watch-hub';

/** Whether the client asked for a stream of server-sent events rather than JSON. */
export function wantsEventStream(ctx: Context): boolean {
  return ctx.accepts('application/json', 'text/event-stream') === 'text/event-stream';
}

/** The id of the last event the client saw, when it reconnects (the EventSource sends it by itself). */
export function lastEventId(ctx: Context): number | null {
  const v = ctx.get('last-event-id');
  return /^\d{1,16}$/.test(v) ? Number(v) : null;
}

/**
 * Turns the response into a stream of server-sent events: each event with its id (so that a client that
 * reconnects resumes after the last one it saw), its kind as the event name and its JSON as the data.
 * `onClose` runs when the client goes away.
 */
export function openEventStream(ctx: Context, onClose: () => void): EventSink {
  const stream = new PassThrough();
  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
  ctx.status = 200;
  ctx.body = stream;
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    onClose();
    stream.end();
  };
  ctx.req.once('close', close);
  stream.write(': stream open\n\n');
  return {
    send(events: StoredEvent[]) {
      if (closed) return;
      stream.write(events.map((e) => `id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(eventView(e))}\n\n`).join(''));
    },
    ping() {
      if (!closed) stream.write(': keep-alive\n\n');
    },
    close,
  };
}
