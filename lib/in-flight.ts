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
  async settle(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const outcome = await Promise.race([Promise.allSettled([...this.work]).then(() => true as const), deadline]);
    clearTimeout(timer);
    return outcome;
  }
}
