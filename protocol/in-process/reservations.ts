import type { Reservation } from '../broker';

/**
 * Room held in named queues for messages that are about to be published: a POST admitted under the
 * bound keeps its place while its task is stored, so that concurrent POSTs cannot all pass the same
 * check and overshoot it. Queues are named rather than held, because a task may name an endpoint whose
 * queue is declared only by its first publish.
 */
export class Reservations {
  private readonly held = new Map<string, number>();

  count(queue: string): number {
    return this.held.get(queue) ?? 0;
  }

  /** One place in each queue, until `release()` (which takes effect once). */
  hold(queues: readonly string[]): Reservation {
    for (const q of queues) this.held.set(q, this.count(q) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        for (const q of queues) {
          const n = this.count(q) - 1;
          if (n > 0) this.held.set(q, n);
          else this.held.delete(q);
        }
      },
    };
  }
}
