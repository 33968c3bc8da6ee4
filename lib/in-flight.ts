import { settlesWithin } from './retry';

/** Work under way that a shutdown waits for, up to a deadline. */
export class InFlight {
  private readonly work = new Set<Promise<unknown>>();

  get size(): number {
    return this.work.size;
  }

  track<T>(work: Promise<T>): Promise<T> {
    this.work.add(work);
    void work.finally(() => this.work.delete(work)).catch(() => undefined);
    return work;
  }

  /** Resolves once everything tracked now has settled (true), or after `timeoutMs` (false). */
  settle(timeoutMs: number): Promise<boolean> {
    return settlesWithin(Promise.allSettled([...this.work]), timeoutMs);
  }
}
