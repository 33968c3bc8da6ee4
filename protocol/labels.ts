/**
 * An endpoint's labels (set by its operator) and facts (reported by its manager), as they travel in
 * register and heartbeat events and as selectors address them. Label keys and values follow the
 * Kubernetes rules, so that selectors written for other fleet tools read the same here.
 */

import { validateLabelKey, validateLabelValue } from './label-selector';

export { parseLabelList } from './label-selector';

/** Most labels one endpoint may carry. */
export const MAX_LABELS = 64;
/** The longest fact value (a host name is at most 253 characters). */
export const MAX_FACT_CHARS = 255;
/** Most entries of a list fact (task types, handler kinds). */
export const MAX_FACT_ITEMS = 1000;

export type Labels = Readonly<Record<string, string>>;

/** What a manager says about itself; every field optional on the wire (an endpoint in another language may send none). */
export interface Facts {
  hostname?: string;
  /** `process.platform` of the manager: linux, darwin, win32… */
  os?: string;
  /** `process.arch`: x64, arm64… */
  arch?: string;
  /** The tasker version the manager runs. */
  version?: string;
  task_types?: string[];
  /** How its handlers are given: `module` (a handlers/<type> module), `command` (a command type's program). */
  handler_kinds?: string[];
}

/** The facts a selector can name, like labels; a label of the same name wins (see `selectable`). */
export const SELECTABLE_FACTS = ['hostname', 'os', 'arch', 'version'] as const;

/**
 * The first problem of a label map, naming the key (`<key>: why`), or null. `MAX_LABELS` bounds it, so
 * that a heartbeat stays small.
 */
export function labelsProblem(labels: Readonly<Record<string, unknown>>): { key: string | null; message: string } | null {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) return { key: null, message: `at most ${MAX_LABELS} labels; got ${keys.length}` };
  for (const key of keys) {
    const value = labels[key];
    const problem = validateLabelKey(key) ?? (typeof value === 'string' ? validateLabelValue(value) : `label '${key}': the value must be a string`);
    if (problem) return { key, message: problem };
  }
  return null;
}

/**
 * What a selector is matched against: the scalar facts, then the labels over them, so that an operator's
 * label is never hidden by what a manager reports.
 */
export function selectable(labels: Labels | null | undefined, facts: Facts | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of SELECTABLE_FACTS) {
    const v = facts?.[name];
    if (typeof v === 'string') out[name] = v;
  }
  return { ...out, ...(labels ?? {}) };
}
