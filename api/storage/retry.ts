import type { Logger } from '../../lib/logger';
import { isTransientDbError } from './database';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `fn` again with backoff while the database cannot be reached; any other error, or one while
 * stopping, goes to the caller. Logs the first failure of a run of them.
 */
export async function withDbRetry<T>(fn: () => Promise<T>, o: { what: string; log: Logger; stopping: () => boolean }): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientDbError(err) || o.stopping()) throw err;
      if (attempt === 0) o.log.warn({ what: o.what, err }, 'database unavailable, retrying');
      await sleep(Math.min(5000, 100 * 2 ** attempt));
    }
  }
}
