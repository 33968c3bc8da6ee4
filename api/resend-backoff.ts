/**
 * When the resend job tries a task again after its send failed (the broker refused it, returned it as
 * unroutable, or did not confirm it in time): the delay doubles with each failure in a row, from `baseS`
 * up to `maxS`. A task that cannot be sent is thereby tried less and less often, and never holds up the
 * others, which the job sends in the meantime.
 */
export interface ResendBackoff {
  /** Seconds before the try after the first failure. */
  baseS: number;
  /** The longest delay, in seconds (`api.resend_backoff_max`). */
  maxS: number;
}

/** Milliseconds to wait after the `failures`-th failed send in a row (1 for the first). */
export function resendDelayMs(failures: number, policy: ResendBackoff): number {
  const doublings = Math.max(0, Math.min(failures - 1, 60));
  return Math.round(Math.min(policy.maxS, policy.baseS * 2 ** doublings) * 1000);
}
