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
