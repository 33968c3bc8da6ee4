import { createHash } from 'node:crypto';
import { InvalidRequestError } from '../lib/errors';
import { formatSelector, parseSelector, Selector } from '../protocol/label-selector';
import type { RolloutRequest } from './rollout';
import type { TaskRequestBody } from './schemas';

/** Deeper payloads are refused: everything that walks a payload (hashing, storing, sending) recurses. */
export const MAX_PAYLOAD_DEPTH = 100;

export interface TaskRequest {
  identifier: string;
  payload: unknown;
  /** The endpoints the client listed; null when none (then the registered ones are expected). */
  endpoints: string[] | null;
  /** A label selector instead of endpoints: the live endpoints of the type it matches, when the task is created. */
  selector?: { text: string; parsed: Selector } | null;
  /** A rolling send, or null for all at once. */
  rollout: RolloutRequest | null;
  /** Seconds the task may run from its send; null: the configured default. */
  timeout: number | null;
  /** Where the task's end is POSTed (its own webhook); null: nowhere. Checked against the configuration by TaskService. */
  notify?: string | null;
  /** Listed endpoints outside the inventory are accepted (delivery to endpoints that appear later). */
  allowUnknownEndpoints?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A POST body that passed its schema, as a request: what JSON Schema cannot say (how deep the payload
 * nests) checked, "no endpoints" made one value.
 */
export function toTaskRequest(body: TaskRequestBody): TaskRequest {
  if (depthExceeds(body.payload, MAX_PAYLOAD_DEPTH)) throw new InvalidRequestError(`payload is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  const endpoints = body.endpoints && body.endpoints.length > 0 ? body.endpoints : null;
  if (body.selector !== undefined && endpoints) throw new InvalidRequestError('give either endpoints or selector, not both');
  // Kept as written: it is what the client sees again on the task, and what tells a repeat from another request.
  const selector = body.selector === undefined ? null : { text: body.selector, parsed: parseSelector(body.selector) };
  return { identifier: body.identifier, payload: body.payload ?? null, endpoints, selector, rollout: body.rollout ?? null, timeout: body.timeout ?? null,
    notify: body.notify ?? null, allowUnknownEndpoints: body.allow_unknown_endpoints === true };
}

/** Whether arrays and objects nest deeper than `max` (without recursion, whatever the depth). */
function depthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** JSON with object keys sorted, so that key order does not make two equal requests differ. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * What tells an idempotent retry (same hash) from a conflicting reuse of the identifier. The rollout is
 * hashed only when there is one, so that the tasks stored before rollouts existed keep their hashes.
 */
export function requestHash(req: Pick<TaskRequest, 'payload' | 'endpoints'> & {
  rollout?: RolloutRequest | null; timeout?: number | null; selector?: TaskRequest['selector']; notify?: string | null;
}): string {
  const rollout = req.rollout ? { rollout: req.rollout } : {};
  // Likewise the timeout: a repeat that asks for another one is another request.
  const timeout = req.timeout ? { timeout: req.timeout } : {};
  // A selector's request is the selector (in its canonical form), not what it resolved to: a repeat after the
  // fleet changed is still the same request.
  const selector = req.selector ? { selector: formatSelector(req.selector.parsed) } : {};
  const endpoints = req.selector ? null : req.endpoints;
  // Likewise the notify URL: hashed only when given, so that earlier tasks' hashes stay.
  const notify = req.notify ? { notify: req.notify } : {};
  return createHash('sha256').update(canonicalJson({ payload: req.payload, endpoints, ...rollout, ...timeout, ...selector, ...notify })).digest('hex');
}
