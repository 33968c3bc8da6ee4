/**
 * A map whose entries expire at a time given with each, holding at most `capacity` of them: the entry
 * written least recently is forgotten first, so that a flood of made-up keys costs bounded memory.
 */
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();

  constructor(private readonly capacity: number) {}

  /** The live value of `key` at `now`; an expired entry is dropped. */
  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.until > now) return e.value;
    this.entries.delete(key);
    return undefined;
  }

  /** Writes `key` as the most recent entry (Map order is write order), evicting the oldest past capacity. */
  set(key: string, value: V, until: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, until });
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
