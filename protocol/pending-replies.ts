import { BrokerUnavailableError } from '../lib/errors';

/** Requests waiting for their reply, by correlation id, each with its deadline. */
export class PendingReplies {
  private readonly pending = new Map<string, { resolve: (body: Buffer) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();

  /** Waits for the reply to `correlationId`; `send` publishes the request (a throw fails the wait). */
  wait(correlationId: string, timeoutMs: number, send: () => void): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        reject(new BrokerUnavailableError(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(correlationId, { resolve, reject, timer });
      try {
        send();
      } catch (err) {
        this.fail(correlationId, new BrokerUnavailableError('request not sent', { cause: err }));
      }
    });
  }

  /** A reply arrived; one that came after its deadline is dropped. */
  resolve(correlationId: string | undefined, body: Buffer): void {
    const p = correlationId === undefined ? undefined : this.pending.get(correlationId);
    if (!p || correlationId === undefined) return;
    this.pending.delete(correlationId);
    clearTimeout(p.timer);
    p.resolve(body);
  }

  /** The request cannot be answered (the broker refused it): fails its wait now rather than at the deadline. */
  fail(correlationId: string, err: Error): void {
    const p = this.pending.get(correlationId);
    if (!p) return;
    this.pending.delete(correlationId);
    clearTimeout(p.timer);
    p.reject(err);
  }

  /** The connection is gone: no reply will come. */
  failAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.fail(id, new BrokerUnavailableError(reason));
  }
}
