import { ExpiringMap } from '../lib/expiring-map';

/** Keys known not to exist, for `ttlMs`, at most `capacity` of them (the oldest forgotten first). */
export class NegativeCache {
  private readonly known: ExpiringMap<true>;

  constructor(private readonly ttlMs: number, capacity: number) {
    this.known = new ExpiringMap(capacity);
  }

  has(key: string, now: number): boolean {
    return this.known.get(key, now) === true;
  }

  add(key: string, now: number): void {
    if (this.ttlMs > 0) this.known.set(key, true, now + this.ttlMs);
  }

  delete(key: string): void {
    this.known.delete(key);
  }

  get size(): number {
    return this.known.size;
  }
}
