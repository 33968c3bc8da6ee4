import { createHash } from 'node:crypto';
import { InvalidRequestError } from '../lib/errors';
import { ENDPOINT_PATTERN } from '../protocol/names';

/** The client's key for a task: 1–64 of A-Za-z0-9._:- */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
export const MAX_ENDPOINTS = 1000;
/** Deeper payloads are refused: everything that walks a payload (hashing, storing, sending) recurses. */
export const MAX_PAYLOAD_DEPTH = 100;

export interface TaskRequest {
  identifier: string;
  payload: unknown;
  /** The endpoints the client listed; null when none (then the registered ones are expected). */
  endpoints: string[] | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a POST body (already parsed JSON) and returns the request, or throws a 400 naming the problem. */
export function parseTaskRequest(body: unknown): TaskRequest {
  if (!isObject(body)) throw new InvalidRequestError('body must be a JSON object');
  for (const key of Object.keys(body)) {
    if (key !== 'identifier' && key !== 'payload' && key !== 'endpoints') {
      throw new InvalidRequestError(`unknown field '${key}'; expected identifier, payload, endpoints`);
    }
  }
  const { identifier, payload, endpoints } = body;
  if (identifier === undefined || identifier === null) throw new InvalidRequestError('identifier is required');
  if (typeof identifier !== 'string' || !IDENTIFIER_PATTERN.test(identifier)) {
    throw new InvalidRequestError('identifier must be 1-64 characters of A-Z a-z 0-9 . _ : -');
  }
  if (depthExceeds(payload, MAX_PAYLOAD_DEPTH)) throw new InvalidRequestError(`payload is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  return { identifier, payload: payload ?? null, endpoints: parseEndpoints(endpoints) };
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

function parseEndpoints(value: unknown): string[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value)) throw new InvalidRequestError('endpoints must be a list of endpoint names');
  if (value.length === 0) return null;
  if (value.length > MAX_ENDPOINTS) throw new InvalidRequestError(`endpoints lists more than ${MAX_ENDPOINTS} names`);
  const seen = new Set<string>();
  for (const name of value) {
    if (typeof name !== 'string' || !ENDPOINT_PATTERN.test(name)) {
      throw new InvalidRequestError(`endpoints: ${JSON.stringify(name)} is not an endpoint name (${ENDPOINT_PATTERN.source})`);
    }
    if (seen.has(name)) throw new InvalidRequestError(`endpoints: '${name}' is listed twice`);
    seen.add(name);
  }
  return value as string[];
}

/** JSON with object keys sorted, so that key order does not make two equal requests differ. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What tells an idempotent retry (same hash) from a conflicting reuse of the identifier. */
export function requestHash(req: TaskRequest): string {
  return createHash('sha256').update(canonicalJson({ payload: req.payload, endpoints: req.endpoints })).digest('hex');
}
