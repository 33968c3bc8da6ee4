import type { HandlerResult, HandlerTask } from './handler';

/**
 * The IPC messages between an endpoint manager's worker pool (manager/worker-pool.ts) and its worker
 * processes (manager/pool-worker.ts). Pure: both sides import it, and it holds no process of its own.
 */

/** Manager → worker: run a task's handler (one run at a time per worker). */
export interface RunMessage {
  kind: 'run';
  /** The pool's number for the run: every later message about it names it. */
  run: number;
  task: HandlerTask;
  endpoint: string;
  attempt: number;
  round: number;
}

/** Why a run's `response.signal` is aborted; its reason says so to the handler. */
export type AbortCause = 'timeout' | 'cancelled' | 'shutdown';

/** Manager → worker: abort the run's `response.signal`. */
export interface AbortMessage {
  kind: 'abort';
  run: number;
  cause: AbortCause;
}

export type ToWorker = RunMessage | AbortMessage;

/** Worker → manager: the worker has loaded and takes runs. */
export interface ReadyMessage {
  kind: 'ready';
}

/** Worker → manager: a line of the run's live output (`response.log`). */
export interface LogMessage {
  kind: 'log';
  run: number;
  line: string;
}

/** Worker → manager: the handler returned (or threw); the worker is free for another run. */
export interface ResultMessage extends HandlerResult {
  kind: 'result';
  run: number;
}

export type FromWorker = ReadyMessage | LogMessage | ResultMessage;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isRunId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const ABORT_CAUSES: readonly string[] = ['timeout', 'cancelled', 'shutdown'];

/** A message from a worker, or null when it is not one (a worker is code the manager does not trust to be well-formed). */
export function parseFromWorker(v: unknown): FromWorker | null {
  if (!isObject(v)) return null;
  switch (v.kind) {
    case 'ready':
      return { kind: 'ready' };
    case 'log':
      return isRunId(v.run) && typeof v.line === 'string' ? { kind: 'log', run: v.run, line: v.line } : null;
    case 'result':
      if (!isRunId(v.run) || typeof v.errnr !== 'number' || !(v.errmsg === null || typeof v.errmsg === 'string')) return null;
      return { kind: 'result', run: v.run, payload: v.payload ?? null, errnr: v.errnr, errmsg: v.errmsg };
    default:
      return null;
  }
}

/**
 * The messages of one IPC write, in order. The manager sends what it has for a worker at the end of its
 * event loop's turn as one array (so that a burst of deliveries wakes a worker once); a worker sends one
 * message at a time, each as soon as it is made, so that nothing it said is lost if its next run kills it.
 */
export function parseBatch<T>(v: unknown, parseOne: (m: unknown) => T | null): T[] {
  const items = Array.isArray(v) ? v : [v];
  return items.map(parseOne).filter((m): m is T => m !== null);
}

/** A message from the manager, or null when it is not one. */
export function parseToWorker(v: unknown): ToWorker | null {
  if (!isObject(v) || !isRunId(v.run)) return null;
  if (v.kind === 'abort') return typeof v.cause === 'string' && ABORT_CAUSES.includes(v.cause) ? { kind: 'abort', run: v.run, cause: v.cause as AbortCause } : null;
  if (v.kind !== 'run' || !isObject(v.task) || typeof v.endpoint !== 'string' || !isRunId(v.attempt) || !isRunId(v.round)) return null;
  return { kind: 'run', run: v.run, task: v.task as unknown as HandlerTask, endpoint: v.endpoint, attempt: v.attempt, round: v.round };
}

/** What a handler's `response.signal.reason` says, per cause. */
export function abortReason(cause: AbortCause): Error {
  switch (cause) {
    case 'timeout': return new Error('handler timeout');
    case 'cancelled': return new Error('task cancelled');
    default: return new Error('the endpoint manager is shutting down');
  }
}

/** Node's own words when V8 gives up for lack of heap (written to the process's stderr before it aborts). */
const OUT_OF_MEMORY = /heap out of memory|Allocation failed/i;

/**
 * The errmsg of a run whose process ended under it: the exit code or the signal, out of memory named as
 * such (with the limit), and the last line the process wrote to stderr (a throw from a timer says why).
 */
export function describeDeath(code: number | null, signal: NodeJS.Signals | null, stderrTail: string, maxHeapMb: number): string {
  const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? 'unknown'}`;
  if (OUT_OF_MEMORY.test(stderrTail)) return `the handler's process ran out of memory (manager.handler_max_heap_mb ${maxHeapMb}) and ${how}`;
  const last = stderrTail.trimEnd().split('\n').filter((l) => l.trim() !== '').pop()?.trim() ?? '';
  const quoted = last.length > 500 ? `…${last.slice(last.length - 500)}` : last;
  return `the handler's process ${how}${quoted ? `: ${quoted}` : ''}`;
}
