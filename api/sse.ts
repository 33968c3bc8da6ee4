import { PassThrough } from 'node:stream';
import type { Context } from 'koa';
import type { Logger } from '../lib/logger';
import { TooManyStreamsError } from '../lib/errors';
import { actorOf } from './auth';
import type { Metrics } from './metrics';
import type { StoredEvent } from './storage/history';
import type { StreamLimits } from './stream-limits';
import { eventView } from './views';
import type { EventSink } from './watch-hub';

/** What every event stream of the API shares: its bounds, its metrics and its log. */
export interface EventStreams {
  limits: StreamLimits;
  /** Bytes a stream may have waiting for its client before the client is disconnected. */
  maxBufferedBytes: number;
  metrics: Metrics;
  log: Logger;
}

/** Whether the client asked for a stream of server-sent events rather than JSON. */
export function wantsEventStream(ctx: Context): boolean {
  return ctx.accepts('application/json', 'text/event-stream') === 'text/event-stream';
}

/** The id of the last event the client saw, when it reconnects (the EventSource sends it by itself). */
export function lastEventId(ctx: Context): number | null {
  const v = ctx.get('last-event-id');
  return /^\d{1,16}$/.test(v) ? Number(v) : null;
}

/** Whose streams count together: the token's (names are unique), or the address's when the API is open. */
function clientOf(ctx: Context): string {
  const actor = actorOf(ctx);
  return actor === null ? `ip:${ctx.ip}` : `token:${actor}`;
}

/** Takes a stream slot for the client, or throws 503 (counted) when it or the server holds its most. */
export function admitEventStream(ctx: Context, streams: EventStreams): () => void {
  try {
    return streams.limits.acquire(clientOf(ctx));
  } catch (err) {
    if (err instanceof TooManyStreamsError) streams.metrics.streamRefused();
    throw err;
  }
}

/** Bytes written to the stream that its client has not taken yet (in the pass-through and the response). */
function buffered(stream: PassThrough, ctx: Context): number {
  return stream.writableLength + stream.readableLength + ctx.res.writableLength;
}

/**
 * Turns the response into a stream of server-sent events: each event with its id (so that a client that
 * reconnects resumes after the last one it saw), its kind as the event name and its JSON as the data.
 * A client that leaves more than `maxBufferedBytes` unread is disconnected: otherwise every event would
 * wait in memory for a reader that never comes (it resumes with Last-Event-ID). `release` frees the
 * stream's slot (see admitEventStream); `onClose` runs when the stream ends, for whatever reason.
 */
export function openEventStream(ctx: Context, streams: EventStreams, release: () => void, onClose: () => void): EventSink {
  const sse = openSseStream(ctx, streams, release, onClose);
  return {
    send(events: StoredEvent[]) {
      sse.write(events.map((e) => `id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(eventView(e))}\n\n`).join(''));
    },
    ping: () => sse.write(': keep-alive\n\n'),
    close: () => sse.close(),
  };
}

/** A stream of server-sent events of any kind, with the bounds of openEventStream: `write` takes whole events as text. */
export interface SseStream {
  write(text: string): void;
  close(): void;
  /** Whether the stream ended (the client left, read too slowly, or close was called). */
  readonly closed: boolean;
  /** Bytes written that its client has not taken yet. */
  readonly buffered: number;
}

export function openSseStream(ctx: Context, streams: EventStreams, release: () => void, onClose: () => void): SseStream {
  const stream = new PassThrough();
  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
  ctx.status = 200;
  ctx.body = stream;
  streams.metrics.streamsOpen(1);
  let closed = false;
  const finish = (): boolean => {
    if (closed) return false;
    closed = true;
    onClose();
    release();
    streams.metrics.streamsOpen(-1);
    return true;
  };
  // The client is gone: what waits for it can never be delivered, so it is dropped rather than kept.
  const gone = (): void => {
    if (finish()) stream.destroy();
  };
  ctx.req.once('close', gone);
  ctx.res.once('close', gone);
  const write = (text: string): void => {
    if (closed) return;
    stream.write(text);
    const waiting = buffered(stream, ctx);
    if (waiting <= streams.maxBufferedBytes) return;
    streams.metrics.streamDisconnectedSlow();
    streams.log.warn({ client: clientOf(ctx), path: ctx.path, buffered: waiting, limit: streams.maxBufferedBytes }, 'event stream client reads too slowly: disconnected (it may resume with Last-Event-ID)');
    finish();
    stream.destroy();
    ctx.req.socket.destroy();
  };
  write(': stream open\n\n');
  return {
    write,
    close() {
      if (finish()) stream.end();
    },
    get closed() {
      return closed;
    },
    get buffered() {
      return closed ? 0 : buffered(stream, ctx);
    },
  };
}
