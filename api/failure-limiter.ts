/**
 * Counts failed attempts per client address or token key in fixed windows, remembering at most
 * `capacity` of them (the least recently failed forgotten first), so that a flood of made-up keys or
 * addresses costs bounded memory.
 */
export class FailureLimiter {
  private readonly counts = new Map<string, { count: number; until: number }>();

  constructor(private readonly limit: number, private readonly windowMs: number, private readonly capacity: number) {}

  /** Seconds until `id` may try again, or 0 when it may now. */
  retryAfter(id: string, now: number): number {
    const c = this.counts.get(id);
    if (!c || c.until <= now || c.count < this.limit) return 0;
    return Math.max(1, Math.ceil((c.until - now) / 1000));
  }

  fail(id: string, now: number): void {
    let c = this.counts.get(id);
    if (!c || c.until <= now) c = { count: 0, until: now + this.windowMs };
    c.count++;
    // Re-inserted: the Map's order is then the order of the latest failures.
    this.counts.delete(id);
    this.counts.set(id, c);
    if (this.counts.size > this.capacity) this.counts.delete(this.counts.keys().next().value as string);
  }

  get size(): number {
    return this.counts.size;
  }
}
