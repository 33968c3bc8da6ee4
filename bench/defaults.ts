import type { Config } from '../config/schema';
import { validateConfig } from '../config/schema';

/** Keys the bench takes from the test mode: the run's own names, credentials and port. */
const KEEP = new Set([
  'api.port', 'manager.db.uri', 'manager.db.admin_uri', 'manager.message_queue.username', 'manager.message_queue.password',
  'manager.message_queue.virtual_host', 'manager.endpoints',
]);

function walk(value: unknown, path: string[], out: Map<string, unknown>): void {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) walk(v, [...path, k], out);
  } else {
    out.set(path.join('.'), value);
  }
}

/**
 * Environment overrides that put every setting the test mode tunes (short intervals, small pools) back
 * to its shipped default, so that the bench measures the configuration a user gets.
 */
export function shippedDefaults(testConfig: Config): Record<string, string> {
  const defaults = new Map<string, unknown>();
  walk(validateConfig({ mode: 'defaults', task_types: [...testConfig.task_types], manager: { db: { uri: 'x' } } }), [], defaults);
  const actual = new Map<string, unknown>();
  walk(testConfig, [], actual);
  const env: Record<string, string> = {};
  for (const [key, value] of defaults) {
    if (KEEP.has(key) || key === 'mode' || key === 'task_types' || JSON.stringify(actual.get(key)) === JSON.stringify(value)) continue;
    env[`TASKER_${key.split('.').join('__').toUpperCase()}`] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return env;
}
