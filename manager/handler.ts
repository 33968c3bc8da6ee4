import { format } from 'node:util';
import { withDeadline } from '../lib/retry';
import {
  ERRNR_BAD_RESULT, ERRNR_HANDLER_THREW, ERRNR_HANDLER_TIMEOUT, MAX_ERRMSG_CHARS, MAX_RESPONSE_PAYLOAD_BYTES,
} from '../protocol/errnr';

export { ERRNR_ATTEMPTS_EXHAUSTED, ERRNR_BAD_RESULT, ERRNR_HANDLER_THREW, ERRNR_HANDLER_TIMEOUT, MAX_ERRMSG_CHARS } from '../protocol/errnr';

/** What a handler run leaves: the response's result. */
export interface HandlerResult {
  payload: unknown;
  errnr: number;
  errmsg: string | null;
}

/**
 * The handler contract (SPEC §7): `handlers/<task_type>.ts` exports `handleTask(task, response)`, which
 * may be async and sets `response.payload`, `response.errnr` and `response.errmsg`.
 */
export interface HandlerTask {
  readonly id: number;
  readonly identifier: string;
  readonly type: string;
  readonly payload: unknown;
  readonly endpoints: readonly string[];
  readonly start_time: string;
}

export interface HandlerResponse {
  /** The endpoint running the handler. */
  readonly endpoint: string;
  /** 1 on the first run; higher when the task is run again after a crash. */
  readonly attempt: number;
  /** 0 the first time the endpoint is sent the task; one more for each retry of it. */
  readonly round: number;
  /** Aborted when the handler timeout passes or the task is cancelled; long handlers should watch it. */
  readonly signal: AbortSignal;
  /**
   * Writes a line (formatted as console.log formats) to the run's live output (docs/handlers.md "Output"); a text
   * with newlines is several lines. Optional to call: a handler that never does is unchanged.
   */
  log(...args: unknown[]): void;
  payload: unknown;
  errnr: number;
  errmsg: string | null;
}

export type HandleTask = (task: HandlerTask, response: HandlerResponse) => void | Promise<void>;

export interface HandlerModule {
  handleTask: HandleTask;
}

export function isHandlerModule(value: unknown): value is HandlerModule {
  return typeof (value as { handleTask?: unknown } | null)?.handleTask === 'function';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** errnr is a 32-bit integer on the wire and in the database. */
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * What a handler left in its response, made storable: whatever it set, the result event is valid and its
 * row can be written (one bad result must not fail the batch it is written with). A payload that is not JSON, or too large, becomes
 * an error result naming the problem; an errnr outside INT becomes ERRNR_HANDLER_THREW; a long errmsg is cut.
 */
export function storableResult(payload: unknown, errnr: unknown, errmsg: unknown, copy = true): HandlerResult {
  const message = errmsg === null || errmsg === undefined ? null : String(errmsg);
  const cut = message !== null && message.length > MAX_ERRMSG_CHARS ? `${message.slice(0, MAX_ERRMSG_CHARS)}…` : message;
  let json: string | undefined;
  try {
    json = payload === undefined ? undefined : JSON.stringify(payload);
  } catch (err) {
    return { payload: null, errnr: ERRNR_BAD_RESULT, errmsg: `handler set a payload that is not JSON: ${errorMessage(err)}` };
  }
  if (json !== undefined && Buffer.byteLength(json) > MAX_RESPONSE_PAYLOAD_BYTES) {
    return { payload: null, errnr: ERRNR_BAD_RESULT, errmsg: `handler set a payload over ${MAX_RESPONSE_PAYLOAD_BYTES} bytes` };
  }
  const valid = typeof errnr === 'number' && Number.isInteger(errnr) && errnr >= INT32_MIN && errnr <= INT32_MAX;
  // JSON.parse(JSON.stringify()) drops what JSON cannot hold (undefined members, functions) the same way the store
  // would; `copy` false: the caller sends the payload on as JSON, which does the same.
  const stored = json === undefined ? null : copy ? JSON.parse(json) as unknown : payload;
  return { payload: stored, errnr: valid ? errnr : ERRNR_HANDLER_THREW, errmsg: cut };
}

/**
 * Runs the handler with a timeout; a throw or a timeout becomes the response's errnr and errmsg. `cancel`
 * (the task was cancelled) aborts `response.signal` too, but the handler's own result is kept.
 */
export async function runHandler(
  mod: HandlerModule, task: HandlerTask, endpoint: string, attempt: number, timeoutMs: number, cancel?: AbortSignal, round = 0,
  onLog: (line: string) => void = () => undefined,
): Promise<HandlerResult> {
  const controller = new AbortController();
  const onCancel = (): void => controller.abort(new Error('task cancelled'));
  if (cancel?.aborted) onCancel();
  else cancel?.addEventListener('abort', onCancel, { once: true });
  const log = (...args: unknown[]): void => {
    for (const line of format(...args).split('\n')) onLog(line);
  };
  const response: HandlerResponse = { endpoint, attempt, round, signal: controller.signal, log, payload: null, errnr: 0, errmsg: null };
  // This run's own marker, made only when the time is up (an Error's stack costs every run otherwise):
  // whatever the handler throws (a DeadlineError of its own included) is not its timeout.
  let timedOut: Error | null = null;
  try {
    await withDeadline(Promise.resolve().then(() => mod.handleTask(task, response)), timeoutMs, () => (timedOut = new Error('handler timeout')));
    return storableResult(response.payload, response.errnr, response.errmsg);
  } catch (err) {
    if (timedOut !== null && err === timedOut) {
      controller.abort(timedOut);
      return { payload: null, errnr: ERRNR_HANDLER_TIMEOUT, errmsg: `handler timed out after ${timeoutMs / 1000} s` };
    }
    return storableResult(null, ERRNR_HANDLER_THREW, errorMessage(err));
  } finally {
    cancel?.removeEventListener('abort', onCancel);
  }
}
