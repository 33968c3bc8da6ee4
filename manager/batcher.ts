/**
 * Group commit. Calls made while a batch is being written are collected and written together as the
 * next batch, so one transaction (and one fsync) serves many callers under load, while a lone call
 * still goes out at once. `write` returns one result per item, in order; if it throws, every caller
 * of that batch gets the error, unless `split` says the error may belong to one item only (bad data,
 * not an unreachable database): then the items are written again one by one, so that one bad item fails
 * alone.
 */
interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = 0;
  private scheduled = false;

  constructor(
    private readonly write: (items: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
    private readonly maxConcurrent = 1,
    private readonly split: (err: unknown) => boolean = () => false,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Starts on the next turn of the event loop, so that calls arriving together share a batch. */
  private schedule(): void {
    if (this.scheduled || this.running >= this.maxConcurrent) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.running < this.maxConcurrent && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.running++;
      this.writeBatch(batch).finally(() => {
        this.running--;
        this.schedule();
      });
    }
  }

  private async writeBatch(batch: Pending<I, O>[]): Promise<void> {
    try {
      const results = await this.write(batch.map((b) => b.item));
      batch.forEach((b, i) => b.resolve(results[i]));
    } catch (err) {
      if (batch.length === 1 || !this.split(err)) {
        batch.forEach((b) => b.reject(err));
        return;
      }
      for (const b of batch) await this.writeBatch([b]);
    }
  }
}
