/**
 * Publishes waiting for the broker's confirm, so that they can all be failed at once: when the
 * connection is lost (a confirm for it can never come) or the broker blocks publishers (a confirm would
 * come only after the alarm clears), instead of each waiting out the publish timeout.
 */
export class Unconfirmed {
  private readonly waiting = new Set<(err: Error) => void>();

  /** Registers a publish's reject; returns what removes it once the publish settled. */
  add(reject: (err: Error) => void): () => void {
    this.waiting.add(reject);
    return () => this.waiting.delete(reject);
  }

  get size(): number {
    return this.waiting.size;
  }

  failAll(err: () => Error): void {
    const rejects = [...this.waiting];
    this.waiting.clear();
    for (const reject of rejects) reject(err());
  }
}
