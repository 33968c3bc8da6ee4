import { Type } from '@sinclair/typebox';
import { NotFoundError } from '../../lib/errors';
import { sleep } from '../../lib/retry';
import { ERROR_KEYWORD } from '../../lib/validation';
import type { ApiRoutes } from '../operation';
import { decodeCursor, encodeCursor } from '../query';
import { EndpointName } from '../schemas';
import { admitEventStream, EventStreams, lastEventId, openSseStream, wantsEventStream } from '../sse';
import { guardDb } from '../storage/database';
import { OutputRow, OutputStore, positionOf, roundFinished } from '../storage/output-store';
import type { TaskService } from '../task-service';
import { answers, STREAM_ANSWER, TASK_PARAMS } from './answers';

/** How often a followed output is read again, and how long after its round finished (late lines of another API process's collector). */
const POLL_MS = 250;
const SETTLE_MS = 500;
const KEEP_ALIVE_MS = 15_000;
const PAGE = 1000;

const OutputQuery = Type.Object({
  cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$', [ERROR_KEYWORD]: 'is not a cursor this API gave', description: 'next_cursor of the previous page' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: PAGE, [ERROR_KEYWORD]: 'must be an integer from 1 to 5000' })),
  round: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, [ERROR_KEYWORD]: 'must be an integer from 0 to 1000000', description: 'the round (0: the first send, one more per retry); default the current one' })),
  follow: Type.Optional(Type.Boolean({ [ERROR_KEYWORD]: 'must be true or false', description: 'true: stream the lines as server-sent events until the round finished (as with Accept: text/event-stream)' })),
}, { additionalProperties: false });

const OutputLineSchema = Type.Object({
  attempt: Type.Integer({ description: 'the run of the round the line is from (1, or more after a crash)' }),
  seq: Type.Integer({ description: 'the line\'s number within its run, from 1' }),
  stream: Type.String({ enum: ['stdout', 'stderr', 'log'], description: 'stdout, stderr (a command), log (a handler\'s response.log, and tasker\'s own lines about dropped output)' }),
  text: Type.String(),
  time: Type.String({ description: 'when the endpoint read the line (its clock), ISO 8601' }),
});

const OutputPage = Type.Object({
  endpoint: Type.String(),
  round: Type.Integer(),
  lines: Type.Array(OutputLineSchema),
  next_cursor: Type.String({ description: 'the position after the last line: pass it as `cursor` to read the lines that came since' }),
  finished: Type.Boolean({ description: 'the round finished (or was superseded, or its task ended); its last lines may be stored a moment after that' }),
});

const lineView = (r: OutputRow): Record<string, unknown> => ({ attempt: r.attempt, seq: r.seq, stream: r.stream, text: r.text, time: r.time.toISOString() });

/**
 * `GET /<type>/<identifier>/responses/<endpoint>/output`: a response's live output. As JSON, a page of
 * the lines after `cursor`; as server-sent events (`follow=true` or Accept: text/event-stream), every line
 * as it is stored, until the round finished. A stream reads the database every 250 ms rather than
 * keeping lines in memory: what it holds is one page, and its client's unread bytes are bounded as every
 * event stream's are (api.sse_max_buffered_bytes).
 */
export function addOutputRoutes(routes: ApiRoutes, service: TaskService, output: OutputStore, streams: EventStreams, draining: () => boolean): void {
  routes.add({
    id: 'getResponseOutput', method: 'get', path: '/:type/:identifier/responses/:endpoint/output', tag: 'tasks', scope: 'read',
    summary: 'A response\'s output lines (a command\'s stdout and stderr, a handler\'s response.log); streamed live with follow=true or Accept: text/event-stream',
    params: { ...TASK_PARAMS, endpoint: EndpointName }, query: OutputQuery,
    answers: { ...answers({ 200: { description: 'a page of lines, or a stream of them (events `line`, then one `end`)', schema: OutputPage, eventStream: true } }, [400, 404]), 503: STREAM_ANSWER },
  }, async (ctx, { query: q }) => {
    const task = await service.find(ctx.params.type, ctx.params.identifier);
    const endpoint = ctx.params.endpoint;
    const first = await guardDb(() => output.progress(task.id, endpoint));
    if (first === null) throw new NotFoundError(`task '${task.identifier}' does not expect endpoint '${endpoint}'`);
    const round = q.round ?? first.round;
    let after = lastEventId(ctx) ?? decodeCursor(q.cursor) ?? 0;
    if (q.follow !== true && !wantsEventStream(ctx)) {
      const lines = await guardDb(() => output.read(task.id, endpoint, round, after, q.limit ?? PAGE));
      if (lines.length > 0) after = positionOf(lines[lines.length - 1].attempt, lines[lines.length - 1].seq);
      ctx.body = { endpoint, round, lines: lines.map(lineView), next_cursor: encodeCursor(after), finished: roundFinished(first, round) };
      return;
    }
    const release = admitEventStream(ctx, streams);
    const sse = openSseStream(ctx, streams, release, () => undefined);
    void (async () => {
      let finishedAt: number | null = null;
      // A quarter of the bound: a write is counted twice (the pass-through's both sides) until its client
      // starts taking it, so waiting past a quarter plus a write of a quarter stays within three quarters.
      const budget = streams.maxBufferedBytes / 4;
      let lastWrite = Date.now();
      while (!sse.closed) {
        // A shutdown: the client resumes elsewhere (or later) with Last-Event-ID.
        if (draining()) {
          sse.close();
          return;
        }
        // The client has not taken what it was sent: wait rather than pile more up (past the bound it would be disconnected).
        if (sse.buffered > budget) {
          await sleep(POLL_MS);
          continue;
        }
        try {
          const lines = await output.read(task.id, endpoint, round, after, PAGE);
          if (lines.length > 0) {
            // At most `budget` at once (a line is at most 16 KB, the budget at least 16 KiB).
            const frames: string[] = [];
            let bytes = 0;
            for (const l of lines) {
              const frame = `id: ${positionOf(l.attempt, l.seq)}\nevent: line\ndata: ${JSON.stringify(lineView(l))}\n\n`;
              bytes += Buffer.byteLength(frame);
              if (bytes > budget && frames.length > 0) break;
              frames.push(frame);
              after = positionOf(l.attempt, l.seq);
            }
            sse.write(frames.join(''));
            lastWrite = Date.now();
            if (frames.length < lines.length || lines.length === PAGE) continue;
          }
          if (finishedAt !== null && Date.now() - finishedAt >= SETTLE_MS) {
            sse.write(`event: end\ndata: ${JSON.stringify({ endpoint, round, next_cursor: encodeCursor(after) })}\n\n`);
            sse.close();
            return;
          }
          const p = await output.progress(task.id, endpoint);
          if (finishedAt === null && (p === null || roundFinished(p, round))) finishedAt = Date.now();
        } catch (err) {
          // The database away for a moment: the client keeps its stream and the next read tries again.
          streams.log.debug({ err, taskId: task.id, endpoint }, 'output stream could not read');
        }
        if (Date.now() - lastWrite >= KEEP_ALIVE_MS) {
          sse.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        await sleep(POLL_MS);
      }
    })();
  });
}
