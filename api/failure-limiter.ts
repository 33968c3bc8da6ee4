import { ExpiringMap } from '../lib/expiring-map';

/**
 * Counts failed attempts per client address or token key in fixed windows, remembering at most
 * `capacity` of them (the least recently failed forgotten first), so that a flood of made-up keys or
 * addresses costs bounded memory.
 */
export class FailureLimiter {
  private readonly counts: ExpiringMap<{ count: number; until: number }>;

  constructor(private readonly limit: number, private readonly windowMs: number, capacity: number) {
    this.counts = new ExpiringMap(capacity);
  }

  /** Seconds until `id` may try again, or 0 when it may now. */
  retryAfter(id: string, now: number): number {
    const c = this.counts.get(id, now);
    if (!c || c.count < this.limit) return 0;
    return Math.max(1, Math.ceil((c.until - now) / 1000));
  }

  fail(id: string, now: number): void {
    const c = this.counts.get(id, now) ?? { count: 0, until: now + this.windowMs };
    c.count++;
    // Written again, so that the least recently failed is the one forgotten first.
    this.counts.set(id, c, c.until);
  }

  get size(): number {
    return this.counts.size;
  }
}
