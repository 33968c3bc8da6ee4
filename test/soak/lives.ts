import { rssMiB } from '../support/rss';
import type { Life } from './rss-trend';
import type { IsolatedPm2 } from '../support/pm2';

/**
 * RSS of every process pm2 runs, sampled from /proc every `intervalMs`; a process pm2 started again
 * (a new PID under the same name) begins a new life.
 */
export class LifeSampler {
  readonly lives: Life[] = [];
  private readonly current = new Map<string, Life>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly pm2: IsolatedPm2, private readonly t0: number) {}

  /** Reads the PIDs from pm2 again (after a restart). */
  async refresh(): Promise<void> {
    for (const p of await this.pm2.list()) {
      if (p.pid <= 0 || this.current.get(p.name)?.pid === p.pid) continue;
      const life: Life = { name: p.name, pid: p.pid, samples: [] };
      this.current.set(p.name, life);
      this.lives.push(life);
    }
  }

  start(intervalMs: number): void {
    const take = (): void => {
      const t = (Date.now() - this.t0) / 1000;
      for (const life of this.current.values()) {
        const mib = rssMiB(life.pid);
        if (mib !== null) life.samples.push({ t, mib });
      }
    };
    take();
    this.timer = setInterval(take, intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
