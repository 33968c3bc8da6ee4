import { DeadlineError } from './errors';

/**
 * Waiting and trying again, in one place: the exponential backoff of every retry loop (database,
 * broker, reports, periodic jobs) and the deadline of every bounded wait, instead of a hand-written
 * loop or `Promise.race` each.
 */

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `none`: the delay as computed. `half`: uniform between half of it and all of it, so that many clients
 * that failed together (a fleet reconnecting) do not try again in step, while each still waits at least half.
 */
export type Jitter = 'none' | 'half';

/** The pause before try `attempt + 1` after `attempt + 1` failures (attempt from 0): `base`·2^attempt, at most `max`, jittered. */
export function backoffDelay(attempt: number, base: number, max: number, jitter: Jitter = 'none', random: () => number = Math.random): number {
  const d = Math.min(max, base * 2 ** attempt);
  return jitter === 'half' ? d / 2 + random() * (d / 2) : d;
}

export interface RetryOptions {
  /** Whether to try again after this error (thrown by try `attempt`, from 0); false: it goes to the caller. */
  retryIf: (err: unknown, attempt: number) => boolean;
  /** First pause in ms, doubled after each failure up to `max` (unless `delay` is given). */
  base?: number;
  max?: number;
  jitter?: Jitter;
  /** A pause of another shape than backoffDelay's, by attempt. */
  delay?: (attempt: number) => number;
  /** At most this many tries in all (default: no limit); the last one's error goes to the caller. */
  tries?: number;
  /** Told of each failure that is retried, before the pause (e.g. to log the first). */
  onRetry?: (err: unknown, attempt: number) => void;
}

/** Runs `fn` until it succeeds, pausing between tries, while `retryIf` allows (and `tries` are left). */
export async function retrying<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if ((o.tries !== undefined && attempt + 1 >= o.tries) || !o.retryIf(err, attempt)) throw err;
      o.onRetry?.(err, attempt);
      await sleep(o.delay ? o.delay(attempt) : backoffDelay(attempt, o.base ?? 100, o.max ?? 5000, o.jitter));
    }
  }
}

/**
 * `promise`, or a rejection once `ms` passed: a DeadlineError naming `what`, or the error `what` makes.
 * The timer is cleared as soon as `promise` settles; `promise` itself runs on (nothing cancels it).
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string | (() => Error)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(typeof what === 'string' ? new DeadlineError(what, ms) : what()), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Whether `promise` settled within `ms` (its outcome is not looked at): for waits that give up quietly. */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return withDeadline(promise.then(() => true, () => true), ms, 'a bounded wait').catch(() => false);
}
