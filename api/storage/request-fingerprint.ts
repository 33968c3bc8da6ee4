import { createHash } from 'node:crypto';
import type { RetrySelector } from './operations';

/**
 * What an Idempotency-Key's request asked for, as a hash: a list of endpoints counts as the same request
 * whatever its order, since the retry does the same thing.
 */
export function selectorFingerprint(selector: RetrySelector): string {
  const canonical = typeof selector === 'string' ? selector : [...new Set(selector)].sort();
  return createHash('sha256').update(JSON.stringify({ endpoints: canonical })).digest('hex');
}
