import { performance } from 'node:perf_hooks';
import type { DataSource, EntityManager } from 'typeorm';
import { databaseNow } from './database';

/** How old a sample of the database's clock may be before the next reading takes a new one. */
const RESAMPLE_MS = 1000;

/**
 * The database's clock for the write paths that run many times a second (task inserts, confirmed sends,
 * response batches): a sample of it (`databaseNow`) taken at most a second ago, carried forward on this
 * process's monotonic clock, so that those transactions do not each spend a round trip on it. The
 * estimate is off by at most half the sample's round trip plus the two clocks' drift over a second; the
 * host's wall clock plays no part, so hosts whose clocks disagree still stamp alike. Deadlines are
 * judged by the sweeps on the database's clock read directly.
 */
export class DatabaseClock {
  private sample: { dbMs: number; monoMs: number } | null = null;
  private reading: Promise<void> | null = null;

  constructor(private readonly ds: DataSource, private readonly resampleMs = RESAMPLE_MS) {}

  /**
   * `em`: the transaction the caller is in, read through when a new sample is due (SQLite's one
   * connection is that transaction's until it ends: a read beside it would wait for ever).
   */
  async now(em?: EntityManager): Promise<Date> {
    if (this.sample === null || performance.now() - this.sample.monoMs > this.resampleMs) await this.resample(em);
    const s = this.sample as { dbMs: number; monoMs: number };
    return new Date(Math.round(s.dbMs + performance.now() - s.monoMs));
  }

  private resample(em?: EntityManager): Promise<void> {
    // One reading at a time: concurrent callers share it.
    this.reading ??= this.read(em).finally(() => { this.reading = null; });
    return this.reading;
  }

  private async read(em?: EntityManager): Promise<void> {
    const before = performance.now();
    const db = await databaseNow(this.ds, em);
    const after = performance.now();
    this.sample = { dbMs: db.getTime(), monoMs: (before + after) / 2 };
  }
}

const clocks = new WeakMap<DataSource, DatabaseClock>();

/** The one clock estimate of a database (see DatabaseClock), shared by every store that writes to it. */
export function clockOf(ds: DataSource): DatabaseClock {
  let clock = clocks.get(ds);
  if (!clock) clocks.set(ds, clock = new DatabaseClock(ds));
  return clock;
}
