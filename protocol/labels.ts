/**
 * An endpoint's labels (set by its operator) and facts (reported by its manager), as they travel in
 * register and heartbeat events and as selectors address them. Label keys and values follow the
 * Kubernetes rules, so that selectors written for other fleet tools read the same here.
 */

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
  /** How its handlers are given: `module` (a handlers/<type> module). */
  handler_kinds?: string[];
}

/** The facts a selector can name, like labels; a label of the same name wins (see `selectable`). */
export const SELECTABLE_FACTS = ['hostname', 'os', 'arch', 'version'] as const;

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why a label key is not one (Kubernetes: `[prefix/]name`), or null when it is. */
export function labelKeyProblem(key: string): string | null {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !prefix.split('.').every((p) => DNS_LABEL.test(p))) {
      return `prefix '${prefix}' must be a DNS subdomain (lower-case letters, digits, - and ., at most 253 characters)`;
    }
  }
  if (name.length === 0 || name.length > 63) return 'name must be 1-63 characters';
  if (!NAME.test(name)) return 'name must be letters, digits, -, _ and ., beginning and ending with a letter or digit';
  return null;
}

/** Why a label value is not one (empty, or up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric), or null. */
export function labelValueProblem(value: string): string | null {
  if (value === '') return null;
  if (value.length > 63) return 'must be at most 63 characters';
  if (!NAME.test(value)) return 'must be letters, digits, -, _ and ., beginning and ending with a letter or digit';
  return null;
}

/**
 * The first problem of a label map, naming the key (`<key>: why`), or null. `MAX_LABELS` bounds it, so
 * that a heartbeat stays small.
 */
export function labelsProblem(labels: Readonly<Record<string, unknown>>): { key: string | null; message: string } | null {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) return { key: null, message: `at most ${MAX_LABELS} labels; got ${keys.length}` };
  for (const key of keys) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) return { key, message: `key '${key}': ${keyProblem}` };
    const value = labels[key];
    if (typeof value !== 'string') return { key, message: 'value must be a string' };
    const valueProblem = labelValueProblem(value);
    if (valueProblem) return { key, message: `value '${value}' ${valueProblem}` };
  }
  return null;
}

/**
 * `role=web,region=eu` as a label map (the form of `TASKER_LABELS` and `--label`); throws with the
 * offending entry. Later entries win.
 */
export function parseLabelList(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq < 0) throw new Error(`label '${entry}' must be key=value`);
    const key = entry.slice(0, eq).trim();
    const value = entry.slice(eq + 1).trim();
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) throw new Error(`label key '${key}': ${keyProblem}`);
    const valueProblem = labelValueProblem(value);
    if (valueProblem) throw new Error(`label '${key}': value '${value}' ${valueProblem}`);
    labels[key] = value;
  }
  return labels;
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
