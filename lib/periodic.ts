import type { Logger } from './logger';
import { backoffDelay } from './retry';

export interface PeriodicJob {
  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void>;
}

/** The longest pause between runs of a failing job (unless its interval is longer). */
export const MAX_BACKOFF_MS = 10_000;

/** The pause after `failures` failed runs in a row: the interval, doubled per failure up to the cap. */
export function backoffMs(intervalMs: number, failures: number): number {
  return backoffDelay(failures, intervalMs, Math.max(intervalMs, MAX_BACKOFF_MS));
}

/**
 * Runs `fn` every `intervalMs`, never two runs at once. A failing run is logged (once per run of
 * failures, e.g. a database outage) and the job goes on with exponential backoff, so that an unavailable
 * database is not asked again and again; the first run that succeeds restores the interval.
 */
export function startPeriodic(name: string, intervalMs: number, fn: () => Promise<unknown>, logger: Logger): PeriodicJob {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  let failures = 0;
  const tick = (): void => {
    timer = null;
    running = fn().then(() => {
      if (failures > 0) logger.info({ job: name, failures }, 'periodic job recovered');
      failures = 0;
    }, (err: unknown) => {
      if (failures === 0) logger.warn({ job: name, err }, 'periodic job failed; retrying with backoff');
      failures++;
    }).finally(() => {
      running = null;
      if (!stopped) timer = setTimeout(tick, backoffMs(intervalMs, failures));
    });
  };
  timer = setTimeout(tick, intervalMs);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
