import type { Logger } from './logger';

export interface PeriodicJob {
  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void>;
}

/** Runs `fn` every `intervalMs`, never two runs at once; a failing run is logged and the job goes on. */
export function startPeriodic(name: string, intervalMs: number, fn: () => Promise<unknown>, logger: Logger): PeriodicJob {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  let failing = false;
  const tick = (): void => {
    timer = null;
    running = fn().then(() => {
      if (failing) logger.info({ job: name }, 'periodic job recovered');
      failing = false;
    }, (err: unknown) => {
      // Logged once per outage rather than on every tick.
      if (!failing) logger.warn({ job: name, err }, 'periodic job failed');
      failing = true;
    }).finally(() => {
      running = null;
      if (!stopped) timer = setTimeout(tick, intervalMs);
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
