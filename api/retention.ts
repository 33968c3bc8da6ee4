import { RETENTION_PATTERN } from '../config/schema';
import { sleep } from '../lib/retry';
import type { RetentionStore } from './storage/retention-store';

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `api.retention` in milliseconds; null for `off`. The configuration's schema has checked its form. */
export function retentionMs(text: string): number | null {
  if (!RETENTION_PATTERN.test(text)) throw new RangeError(`not a retention: '${text}' (off, or such as 30d, 12h, 90m)`);
  if (text === 'off') return null;
  return Number(text.slice(0, -1)) * UNIT_MS[text.slice(-1) as keyof typeof UNIT_MS];
}


/**
 * Removes the tasks that ended more than the retention ago, batch after batch until none is due. After
 * each batch it idles so that removing takes at most `dutyCycle` of its time: a removal costs the database
 * about what writing the task did, and at full speed it would take that from the requests beside it (see
 * the retention bench). Every API instance may run it at once: each batch takes tasks no other one holds.
 */
export class RetentionJob {
  private stopping = false;

  constructor(
    private readonly store: RetentionStore, private readonly keepMs: number, private readonly batch: number, private readonly dutyCycle: number,
  ) {}

  /** One run, with ended tasks judged against `now` (the database's clock); answers how many tasks it removed. */
  async run(now: Date): Promise<number> {
    const cutoff = new Date(now.getTime() - this.keepMs);
    let total = 0;
    while (!this.stopping) {
      const started = performance.now();
      const removed = await this.store.removeBatch(cutoff, this.batch);
      total += removed;
      if (removed < this.batch) break;
      await sleep((performance.now() - started) * (1 / this.dutyCycle - 1));
    }
    return total;
  }

  /** The run in progress ends after its current batch: a backlog of millions must not hold up a shutdown. */
  stop(): void {
    this.stopping = true;
  }
}
