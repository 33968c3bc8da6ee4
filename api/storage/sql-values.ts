/**
 * Values crossing the SQL boundary in raw queries. Times are stored as UTC `YYYY-MM-DD HH:MM:SS.mmm`,
 * which MySQL DATETIME(3) and SQLite text both compare correctly; JSON columns are text.
 */
export function sqlTime(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}

export function readTime(v: unknown): Date {
  if (v instanceof Date) return v;
  if (typeof v === 'string') return new Date(v.includes('T') ? v : v.replace(' ', 'T') + 'Z');
  throw new TypeError(`not a time value: ${String(v)}`);
}

export function readOptionalTime(v: unknown): Date | null {
  return v === null || v === undefined ? null : readTime(v);
}

export function readJson<T>(v: unknown): T {
  if (v === null || v === undefined) return null as T;
  return (typeof v === 'string' ? JSON.parse(v) : v) as T;
}

export function writeJson(v: unknown): string | null {
  return v === null || v === undefined ? null : JSON.stringify(v);
}

/**
 * Ids are 64-bit in the database and JSON numbers in the API and on the wire, exact up to 2^53 - 1 (at
 * 2,000 tasks/s with 1,000 endpoints each, 140 years of responses). Past that an id would lose digits as a
 * number: it is refused instead.
 */
export function readId(v: unknown): number {
  const n = typeof v === 'bigint' ? Number(v) : Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`id ${String(v)} is beyond 2^53 - 1, the largest exact JSON number`);
  return n;
}
