/** Keys known not to exist, for `ttlMs`, at most `capacity` of them (the oldest forgotten first). */
export class NegativeCache {
  private readonly until = new Map<string, number>();

  constructor(private readonly ttlMs: number, private readonly capacity: number) {}

  has(key: string, now: number): boolean {
    const t = this.until.get(key);
    if (t === undefined) return false;
    if (t > now) return true;
    this.until.delete(key);
    return false;
  }

  add(key: string, now: number): void {
    if (this.ttlMs <= 0) return;
    this.until.delete(key);
    this.until.set(key, now + this.ttlMs);
    if (this.until.size > this.capacity) this.until.delete(this.until.keys().next().value as string);
  }

  delete(key: string): void {
    this.until.delete(key);
  }

  get size(): number {
    return this.until.size;
  }
}
