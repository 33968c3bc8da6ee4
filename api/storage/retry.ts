import type { Logger } from '../../lib/logger';
import { retrying } from '../../lib/retry';
import { isTransientDbError } from './database';

/**
 * The start and the end of a database outage, each logged once however many callers meet it (the
 * collector retries every event it holds).
 */
export class OutageNotice {
  private down = false;

  constructor(private readonly log: Logger, private readonly what: string) {}

  failed(err: unknown): void {
    if (this.down) return;
    this.down = true;
    this.log.warn({ what: this.what, err }, 'database unavailable, retrying');
  }

  succeeded(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info({ what: this.what }, 'database available again');
  }
}

/**
 * Runs `fn` again with backoff while the database cannot be reached; any other error, or one while
 * stopping, goes to the caller. Logs the first failure of a run of them (once for all callers that share
 * `notice`).
 */
export async function withDbRetry<T>(
  fn: () => Promise<T>, o: { what: string; log: Logger; stopping: () => boolean; notice?: OutageNotice },
): Promise<T> {
  const notice = o.notice ?? new OutageNotice(o.log, o.what);
  const result = await retrying(fn, {
    base: 100, max: 5000, retryIf: (err) => isTransientDbError(err) && !o.stopping(), onRetry: (err) => notice.failed(err),
  });
  notice.succeeded();
  return result;
}
