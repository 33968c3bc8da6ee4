import { InvalidRequestError } from '../lib/errors';

/**
 * Query parameters of the read routes, checked strictly: a parameter the route does not know, given
 * twice, or with a value it does not take is a 400 naming it.
 */
export type Query = Record<string, string | string[] | undefined>;

const fail = (name: string, message: string): never => {
  throw new InvalidRequestError(`query parameter '${name}': ${message}`);
};

export function checkKnown(q: Query, allowed: readonly string[]): void {
  for (const key of Object.keys(q)) {
    if (!allowed.includes(key)) fail(key, `unknown; this route takes ${allowed.length ? allowed.join(', ') : 'none'}`);
  }
}

export function single(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) fail(name, 'given more than once');
  return v as string | undefined;
}

export function parseLimit(q: Query, def = 50, max = 500): number {
  const v = single(q, 'limit');
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) fail('limit', `must be an integer from 1 to ${max}`);
  return Number(v);
}

/** Cursors are opaque to clients: the position after which the next page starts. */
export function encodeCursor(after: number | string): string {
  return Buffer.from(JSON.stringify({ after })).toString('base64url');
}

function cursorValue(q: Query): unknown {
  const v = single(q, 'cursor');
  if (v === undefined) return undefined;
  try {
    const after = (JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as { after?: unknown }).after;
    if (after !== undefined) return after;
  } catch {
    // reported below
  }
  return fail('cursor', 'is not a cursor this API gave');
}

/** A cursor of a list ordered by id. */
export function parseCursor(q: Query): number | null {
  const after = cursorValue(q);
  if (after === undefined) return null;
  if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) fail('cursor', 'is not a cursor of this list');
  return after as number;
}

/** A cursor of a list ordered by name. */
export function parseNameCursor(q: Query): string | null {
  const after = cursorValue(q);
  if (after === undefined) return null;
  if (typeof after !== 'string' || after.length > 64) fail('cursor', 'is not a cursor of this list');
  return after as string;
}

const ISO_TIME = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d))?$/;

export function parseTime(q: Query, name: string): Date | null {
  const v = single(q, name);
  if (v === undefined) return null;
  const ms = Date.parse(v);
  if (!ISO_TIME.test(v) || Number.isNaN(ms)) fail(name, 'must be an ISO 8601 time such as 2026-11-24T10:00:00Z');
  return new Date(ms);
}

export function parseEnum<T extends string>(q: Query, name: string, values: readonly T[]): T | null {
  const v = single(q, name);
  if (v === undefined) return null;
  if (!(values as readonly string[]).includes(v)) fail(name, `must be one of ${values.join(', ')}`);
  return v as T;
}

/** Seconds to wait for a task to end: above 0, at most `max`. */
export function parseWait(q: Query, max = 60): number | null {
  const v = single(q, 'wait');
  if (v === undefined) return null;
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0 || Number(v) > max) fail('wait', `must be a number of seconds above 0 and at most ${max}`);
  return Number(v);
}

export function parsePattern(q: Query, name: string, pattern: RegExp, what: string): string | null {
  const v = single(q, name);
  if (v === undefined) return null;
  if (!pattern.test(v)) fail(name, `must be ${what}`);
  return v;
}
