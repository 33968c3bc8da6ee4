import { createHash } from 'node:crypto';
import { InvalidRequestError } from '../lib/errors';
import type { RolloutRequest } from './rollout';
import type { TaskRequestBody } from './schemas';

/** Deeper payloads are refused: everything that walks a payload (hashing, storing, sending) recurses. */
export const MAX_PAYLOAD_DEPTH = 100;

export interface TaskRequest {
  identifier: string;
  payload: unknown;
  /** The endpoints the client listed; null when none (then the registered ones are expected). */
  endpoints: string[] | null;
  /** A rolling send, or null for all at once. */
  rollout: RolloutRequest | null;
  /** Seconds the task may run from its send; null: the configured default. */
  timeout: number | null;
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
  return { identifier: body.identifier, payload: body.payload ?? null, endpoints, rollout: body.rollout ?? null, timeout: body.timeout ?? null,
    allowUnknownEndpoints: body.allow_unknown_endpoints === true };
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
export function requestHash(req: Pick<TaskRequest, 'payload' | 'endpoints'> & { rollout?: RolloutRequest | null; timeout?: number | null }): string {
  const rollout = req.rollout ? { rollout: req.rollout } : {};
  // Likewise the timeout: a repeat that asks for another one is another request.
  const timeout = req.timeout ? { timeout: req.timeout } : {};
  return createHash('sha256').update(canonicalJson({ payload: req.payload, endpoints: req.endpoints, ...rollout, ...timeout })).digest('hex');
}
