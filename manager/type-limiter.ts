import { RunHandedBackError } from './worker-pool';

const noop = (): void => undefined;

/**
 * The most runs of a task type at once in a manager process (`manager.type_concurrency`), whatever runs
 * them (the worker pool, a command's process, the manager itself): a run over its type's limit waits, in
 * the order it came, holding its delivery as a run waiting for a worker does. A type without a limit is
 * bounded only by `manager.concurrency` and `prefetch`.
 */
export class TypeLimiter {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(private readonly limits: Readonly<Record<string, number>>) {}

  /** Runs of `type` under way (for the tests and the logs). */
  runningOf(type: string): number {
    return this.running.get(type) ?? 0;
  }

  /**
   * Resolves with the function that frees the slot once a run of `type` may start; rejects with
   * RunHandedBackError when `stop` (the manager's shutdown) comes first: the run never starts.
   */
  acquire(type: string, stop: AbortSignal): Promise<() => void> {
    const limit = this.limits[type];
    if (limit === undefined) return Promise.resolve(noop);
    if (stop.aborted) return Promise.reject(new RunHandedBackError());
    if (this.runningOf(type) < limit) return Promise.resolve(this.take(type));
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(type) ?? [];
      this.waiting.set(type, queue);
      const start = (): void => {
        stop.removeEventListener('abort', withdraw);
        resolve(this.take(type));
      };
      const withdraw = (): void => {
        const i = queue.indexOf(start);
        if (i >= 0) queue.splice(i, 1);
        reject(new RunHandedBackError());
      };
      stop.addEventListener('abort', withdraw, { once: true });
      queue.push(start);
    });
  }

  private take(type: string): () => void {
    this.running.set(type, this.runningOf(type) + 1);
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      this.running.set(type, this.runningOf(type) - 1);
      this.waiting.get(type)?.shift()?.();
    };
  }
}
