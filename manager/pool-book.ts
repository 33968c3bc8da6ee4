/**
 * The bookkeeping of a worker pool, without processes (so that it can be tested alone): which runs wait,
 * how many runs each ready worker holds, how many workers live (forked and not yet exited) and how many
 * are still starting. A worker runs one handler at a time; the runs it holds beyond the first wait in it,
 * in order (a pipeline, so that a worker woken for one run finds the next one there). A run's slot is
 * free only when its handler returned or its process is gone.
 */
export class PoolBook<W, R> {
  /** Ready workers → the runs sent to each and not ended. */
  private readonly load = new Map<W, number>();
  private readonly waiting: R[] = [];
  private live = 0;
  private starting = 0;

  /**
   * `depth`: most runs a worker holds; more than one only for a worker `canQueue` says may take one more
   * (its current run is young, so probably short): short handlers are served by few processes, and
   * another is forked only for a run that no worker can take.
   */
  constructor(readonly size: number, readonly depth = 1) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`a pool of ${size} workers`);
    if (!Number.isInteger(depth) || depth < 1) throw new Error(`a pipeline of ${depth} runs`);
  }

  get liveCount(): number { return this.live; }
  get idleCount(): number { return [...this.load.values()].filter((n) => n === 0).length; }
  get waitingCount(): number { return this.waiting.length; }

  submit(run: R): void {
    this.waiting.push(run);
  }

  /** Runs sent to a worker that died before starting them: first in line again. */
  requeue(runs: R[]): void {
    this.waiting.unshift(...runs);
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
    this.load.set(worker, 0);
  }

  /** One of the worker's runs ended (its handler returned). */
  freed(worker: W): void {
    const n = this.load.get(worker);
    if (n !== undefined && n > 0) this.load.set(worker, n - 1);
  }

  /** A worker's process exited (`wasStarting`: before it said it was ready). */
  exited(worker: W, wasStarting: boolean): void {
    this.live--;
    if (wasStarting) this.starting--;
    this.load.delete(worker);
  }

  /**
   * Waiting runs paired with workers, oldest run first: idle workers first, then the least loaded worker
   * under `depth` that `canQueue`; but a run that `packs` (its handler is known to return at once) goes
   * first behind the runs of the busiest worker that can queue it, so that a burst of such runs wakes one
   * process rather than one per run. The pairs leave the book.
   */
  assign(canQueue: (worker: W) => boolean = () => false, packs: (run: R) => boolean = () => false): [W, R][] {
    const pairs: [W, R][] = [];
    for (let pair = this.assignNext(canQueue, packs); pair; pair = this.assignNext(canQueue, packs)) pairs.push(pair);
    return pairs;
  }

  /** The oldest waiting run paired with a worker as `assign` does, or undefined when none can take it. */
  assignNext(canQueue: (worker: W) => boolean = () => false, packs: (run: R) => boolean = () => false): [W, R] | undefined {
    if (this.waiting.length === 0) return undefined;
    const best = (packs(this.waiting[0]) ? this.busiestQueueing(canQueue) : undefined) ?? this.leastLoaded(canQueue);
    if (best === undefined) return undefined;
    this.load.set(best, (this.load.get(best) as number) + 1);
    return [best, this.waiting.shift() as R];
  }

  private leastLoaded(canQueue: (worker: W) => boolean): W | undefined {
    let best: W | undefined;
    let bestLoad = Infinity;
    for (const [w, n] of this.load) {
      if (n < bestLoad && (n === 0 || (n < this.depth && canQueue(w)))) {
        best = w;
        bestLoad = n;
      }
    }
    return best;
  }

  private busiestQueueing(canQueue: (worker: W) => boolean): W | undefined {
    let best: W | undefined;
    let bestLoad = 0;
    for (const [w, n] of this.load) {
      if (n > bestLoad && n < this.depth && canQueue(w)) {
        best = w;
        bestLoad = n;
      }
    }
    return best;
  }

  /**
   * How many workers to fork now: one when runs wait that no worker could take, none is starting already
   * and the size allows (one at a time: the next run may find the first free again, and forks cost CPU).
   */
  toFork(): number {
    return this.waiting.length > 0 && this.starting === 0 && this.live < this.size ? 1 : 0;
  }
}
