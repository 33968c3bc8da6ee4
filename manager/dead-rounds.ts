/**
 * The rounds of tasks that an endpoint must not run (cancelled, or superseded by a newer round): task id →
 * the highest such round, which stands for every round up to it. Bounded: past `limit` tasks it forgets the
 * oldest task (lowest id), never a newer one, and remembers below which id it may have forgotten something,
 * so that a delivery of a task that old is checked with the server side instead of run on trust.
 */
export class DeadRounds {
  private readonly rounds = new Map<number, number>();
  /** The ids of `rounds`, a binary min-heap: the oldest task is evicted first. */
  private readonly heap: number[] = [];
  /** Tasks with a lower id may have dead rounds this does not know of. */
  private completeFrom = 0;

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.rounds.size;
  }

  /** Rounds up to `round` of the task are not to run. */
  add(taskId: number, round: number): void {
    const known = this.rounds.get(taskId);
    if (known !== undefined) {
      if (round > known) this.rounds.set(taskId, round);
      return;
    }
    this.rounds.set(taskId, round);
    this.push(taskId);
    while (this.rounds.size > this.limit) {
      const oldest = this.pop();
      this.rounds.delete(oldest);
      this.completeFrom = Math.max(this.completeFrom, oldest + 1);
    }
  }

  isDead(taskId: number, round: number): boolean {
    const known = this.rounds.get(taskId);
    return known !== undefined && round <= known;
  }

  /** True when this may not know every dead round of the task: it is older than what is remembered in full. */
  uncertain(taskId: number): boolean {
    return taskId < this.completeFrom;
  }

  /**
   * The server side's list, newest task first, after a (re)connect. Complete, it covers every task; cut
   * (`truncated`), only those from its oldest task on.
   */
  sync(list: readonly { task_id: number; round: number }[], truncated: boolean): void {
    this.completeFrom = truncated ? list.reduce((min, c) => Math.min(min, c.task_id), Number.MAX_SAFE_INTEGER) : 0;
    for (const c of list) this.add(c.task_id, c.round);
  }

  private push(id: number): void {
    const h = this.heap;
    h.push(id);
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (h[parent] <= h[i]) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0];
    const last = h.pop() as number;
    if (h.length === 0) return top;
    h[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l] < h[m]) m = l;
      if (r < h.length && h[r] < h[m]) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
    return top;
  }
}
