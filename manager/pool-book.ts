/**
 * The bookkeeping of a worker pool, without processes (so that it can be tested alone): which runs wait,
 * which workers are idle, how many live (forked and not yet exited) and how many are still starting.
 * A worker takes one run at a time, and is counted until its process has exited: a run's slot is free
 * only when its handler returned or its process is gone.
 */
export class PoolBook<W, R> {
  private readonly idle: W[] = [];
  private readonly waiting: R[] = [];
  private live = 0;
  private starting = 0;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`a pool of ${size} workers`);
  }

  get liveCount(): number { return this.live; }
  get idleCount(): number { return this.idle.length; }
  get waitingCount(): number { return this.waiting.length; }

  submit(run: R): void {
    this.waiting.push(run);
  }

  /** A run that no longer wants a worker (its manager is stopping); false when it was not waiting. */
  withdraw(run: R): boolean {
    const i = this.waiting.indexOf(run);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    return true;
  }

  /** The oldest waiting run, taken out (one that a worker that could not start fails). */
  takeOldest(): R | undefined {
    return this.waiting.shift();
  }

  /** A worker was forked: it counts against the size from now on. */
  forked(): void {
    this.live++;
    this.starting++;
  }

  /** A forked worker said it is ready: it takes runs. */
  started(worker: W): void {
    this.starting--;
    this.idle.push(worker);
  }

  /** A worker whose run ended (its handler returned): free again. */
  freed(worker: W): void {
    this.idle.push(worker);
  }

  /** A worker's process exited (`wasStarting`: before it said it was ready). */
  exited(worker: W, wasStarting: boolean): void {
    this.live--;
    if (wasStarting) this.starting--;
    const i = this.idle.indexOf(worker);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Each waiting run paired with an idle worker, oldest run first; the pairs leave the book. */
  assign(): [W, R][] {
    const pairs: [W, R][] = [];
    while (this.idle.length > 0 && this.waiting.length > 0) pairs.push([this.idle.shift() as W, this.waiting.shift() as R]);
    return pairs;
  }

  /** How many workers to fork now: one for each waiting run that none starting will take, within the size. */
  toFork(): number {
    return Math.max(0, Math.min(this.size - this.live, this.waiting.length - this.starting));
  }
}
