import { InvalidRequestError } from '../lib/errors';

/**
 * What query parameters hold beyond their schema: cursors (opaque to clients) and times that must name
 * a real moment (the schema's pattern lets 2026-13-45 through).
 */
/** The 400 of a query parameter, naming it. */
export const queryParameterError = (name: string, message: string): never => {
  throw new InvalidRequestError(`query parameter '${name}': ${message}`);
};

/** The position after which the next page starts. */
export function encodeCursor(after: number | string): string {
  return Buffer.from(JSON.stringify({ after })).toString('base64url');
}

function cursorValue(v: string | undefined): unknown {
  if (v === undefined) return undefined;
  try {
    const after = (JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as { after?: unknown } | null)?.after;
    if (after !== undefined) return after;
  } catch {
    // reported below
  }
  return queryParameterError('cursor', 'is not a cursor this API gave');
}

/** A cursor of a list ordered by id. */
export function decodeCursor(v: string | undefined): number | null {
  const after = cursorValue(v);
  if (after === undefined) return null;
  if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) queryParameterError('cursor', 'is not a cursor of this list');
  return after as number;
}

/** A cursor of a list ordered by name. */
export function decodeNameCursor(v: string | undefined): string | null {
  const after = cursorValue(v);
  if (after === undefined) return null;
  if (typeof after !== 'string' || after.length > 64) queryParameterError('cursor', 'is not a cursor of this list');
  return after as string;
}

export function decodeTime(v: string | undefined, name: string): Date | null {
  if (v === undefined) return null;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) queryParameterError(name, 'must be an ISO 8601 time such as 2026-11-24T10:00:00Z');
  return new Date(ms);
}

// Plain decimals only: Number() also takes ' 1', '0x10', '1e400' (Infinity), '-0' and '', which
// would reach the SQL or a timer as values nobody meant.
const INTEGER_TEXT = /^-?(?:0|[1-9][0-9]{0,15})$/;
const NUMBER_TEXT = /^-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,9})?$/;

/** A numeric query parameter as the number it writes, or a 400 naming it (with the schema's wording when it has one). */
export function parseNumericQuery(name: string, text: string, integer: boolean, wording?: string): number {
  const ok = (integer ? INTEGER_TEXT : NUMBER_TEXT).test(text) && text !== '-0';
  const value = ok ? Number(text) : NaN;
  if (!Number.isFinite(value) || (integer && !Number.isSafeInteger(value)) || Object.is(value, -0)) {
    return queryParameterError(name, wording ?? (integer ? 'must be a decimal integer' : 'must be a decimal number'));
  }
  return value;
}
