import type { HandlerResult } from './completion';

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
  /** Aborted when the handler timeout passes or the manager shuts down; long handlers should watch it. */
  readonly signal: AbortSignal;
  payload: unknown;
  errnr: number;
  errmsg: string | null;
}

export type HandleTask = (task: HandlerTask, response: HandlerResponse) => void | Promise<void>;

export interface HandlerModule {
  handleTask: HandleTask;
}

/** errnr values the manager itself sets. Handlers use their own numbers (the seed's backup used 32). */
export const ERRNR_HANDLER_THREW = 1;
export const ERRNR_HANDLER_TIMEOUT = 124;
export const ERRNR_ATTEMPTS_EXHAUSTED = 125;

export function isHandlerModule(value: unknown): value is HandlerModule {
  return typeof (value as { handleTask?: unknown } | null)?.handleTask === 'function';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs the handler with a timeout; a throw or a timeout becomes the response's errnr and errmsg. */
export async function runHandler(
  mod: HandlerModule, task: HandlerTask, endpoint: string, attempt: number, timeoutMs: number,
): Promise<HandlerResult> {
  const controller = new AbortController();
  const response: HandlerResponse = { endpoint, attempt, signal: controller.signal, payload: null, errnr: 0, errmsg: null };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
  try {
    const outcome = await Promise.race([Promise.resolve().then(() => mod.handleTask(task, response)), timeout]);
    if (outcome === 'timeout') {
      controller.abort(new Error('handler timeout'));
      return { payload: null, errnr: ERRNR_HANDLER_TIMEOUT, errmsg: `handler timed out after ${timeoutMs / 1000} s` };
    }
    const errnr = Number.isInteger(response.errnr) ? response.errnr : ERRNR_HANDLER_THREW;
    const errmsg = response.errmsg === null || response.errmsg === undefined ? null : String(response.errmsg);
    return { payload: response.payload ?? null, errnr, errmsg };
  } catch (err) {
    return { payload: null, errnr: ERRNR_HANDLER_THREW, errmsg: errorMessage(err) };
  } finally {
    clearTimeout(timer);
  }
}
