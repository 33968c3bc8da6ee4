/**
 * Group commit. Calls made while a batch is being written are collected and written together as the
 * next batch, so one transaction (and one fsync) serves many callers under load, while a lone call
 * still goes out at once. `write` returns one result per item, in order; if it throws, every caller
 * of that batch gets the error, unless `split` says the error may belong to one item only (bad data,
 * not an unreachable database): then the items are written again one by one, so that one bad item fails
 * alone.
 */
export interface BatcherOptions<I> {
  /** Most items in one batch. */
  maxBatch: number;
  /** Batches written at the same time. */
  maxConcurrent?: number;
  /** Whether a failed batch is written again item by item. */
  split?: (err: unknown) => boolean;
  /** An item's size (e.g. bytes of SQL it adds); a batch stays within `maxWeight`, but always takes one item. */
  weigh?: (item: I) => number;
  maxWeight?: number;
  /** Waits this long for more items before writing a batch that is not full (for work nobody waits on). */
  lingerMs?: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = 0;
  private scheduled = false;

  private readonly maxConcurrent: number;

  constructor(private readonly write: (items: I[]) => Promise<O[]>, private readonly options: BatcherOptions<I>) {
    this.maxConcurrent = options.maxConcurrent ?? 1;
  }

  /** Resolves once everything submitted so far has been written (or failed). */
  async idle(): Promise<void> {
    while (this.queue.length > 0 || this.running > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Starts on the next turn of the event loop (or after the linger), so that calls arriving together share a batch. */
  private schedule(): void {
    if (this.scheduled || this.running >= this.maxConcurrent || this.queue.length === 0) return;
    this.scheduled = true;
    const go = (): void => {
      this.scheduled = false;
      this.drain();
    };
    const linger = this.options.lingerMs ?? 0;
    if (linger > 0 && this.queue.length < this.options.maxBatch) setTimeout(go, linger);
    else setImmediate(go);
  }

  private drain(): void {
    while (this.running < this.maxConcurrent && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchLength());
      this.running++;
      this.writeBatch(batch).finally(() => {
        this.running--;
        this.schedule();
      });
    }
  }

  private batchLength(): number {
    const { maxBatch, weigh, maxWeight = Infinity } = this.options;
    const limit = Math.min(maxBatch, this.queue.length);
    if (!weigh) return limit;
    let n = 1;
    let weight = weigh(this.queue[0].item);
    while (n < limit && (weight += weigh(this.queue[n].item)) <= maxWeight) n++;
    return n;
  }

  private async writeBatch(batch: Pending<I, O>[]): Promise<void> {
    try {
      const results = await this.write(batch.map((b) => b.item));
      batch.forEach((b, i) => b.resolve(results[i]));
    } catch (err) {
      if (batch.length === 1 || !this.options.split?.(err)) {
        batch.forEach((b) => b.reject(err));
        return;
      }
      for (const b of batch) await this.writeBatch([b]);
    }
  }
}
