import type { DataSource } from 'typeorm';
import type { NewTask } from './task-store';
import { dialectOf } from './database';

/** Room left in a packet for what a batch's statement holds besides its rows' values. */
const STATEMENT_MARGIN = 64 * 1024;
/**
 * SQLite takes the values as bound parameters (up to a gigabyte each), not in the SQL text: a bound that
 * keeps a batch's transaction, and its memory, reasonable.
 */
const SQLITE_BATCH_BYTES = 64 * 1024 * 1024;
/** A task row's SQL besides its payload and endpoint lists: identifier, type, status, hash, times, quotes, commas. */
const ROW_OVERHEAD = 512;

/**
 * The most bytes of task rows one INSERT may carry. On MySQL the driver sends a statement with its
 * values written into it, and the server refuses (and closes the connection for) a packet larger than
 * `max_allowed_packet`: read once, as this session sees it, less a margin.
 */
export async function taskInsertBound(ds: DataSource): Promise<number> {
  if (dialectOf(ds) !== 'mysql') return SQLITE_BATCH_BYTES;
  const rows: { max: unknown }[] = await ds.query('SELECT @@max_allowed_packet AS max');
  return Number(rows[0]?.max) - STATEMENT_MARGIN;
}

/** The bytes a value takes in the statement, escapes included. */
export function literalBytes(text: string | null): number {
  if (text === null) return 4;
  // The characters the driver escapes with a backslash in a string literal (sqlstring's set): two bytes each.
  // eslint-disable-next-line no-control-regex -- control characters are what it counts
  const escaped = /[\0\b\t\n\r\x1a"'\\]/g;
  let escapes = 0;
  while (escaped.exec(text)) escapes++;
  return Buffer.byteLength(text) + escapes + 2;
}

/** The bytes a task's row adds to the INSERT of its batch, given its payload as stored (JSON). */
export function taskRowBytes(task: NewTask, payloadJson: string | null): number {
  const lists = literalBytes(task.endpoints === null ? null : JSON.stringify(task.endpoints)) + literalBytes(JSON.stringify(task.expected));
  return ROW_OVERHEAD + literalBytes(payloadJson) + lists + (task.rollout ? literalBytes(JSON.stringify(task.rollout)) : 0) + literalBytes(task.selector ?? null)
    + literalBytes(task.notify ?? null);
}
