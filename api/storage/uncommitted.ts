import type { DataSource } from 'typeorm';
import type { Logger } from '../../lib/logger';
import { dialectOf } from './database';
import { readId } from './sql-values';

/*
 * Reading events in id order without ever passing one that commits later.
 *
 * An event's id is taken when its row is inserted, inside the writing transaction, and the row becomes
 * visible to other readers when that transaction commits, which across tasks may be in another order. A
 * reader that served id 12 while the transaction holding id 11 was still open would never serve 11. So a
 * read serves committed events only up to (not including) the lowest id that is still uncommitted, and
 * the database tells which ids those are, not a clock:
 *
 *   1. the committed events after the cursor are read (an ordinary read: committed rows only);
 *   2. then, at READ UNCOMMITTED (a dirty read, which also shows the rows of open transactions), the ids
 *      in the same range; an id seen there and not in step 1 belongs to a transaction that was open at
 *      step 1 (or committed between the two reads: holding it back once more costs nothing);
 *   3. the events of step 1 below the lowest such id are served; the rest wait for the next read.
 *
 * Why nothing escapes: an event x served was committed at step 1, so every smaller id y was allocated
 * before x (InnoDB's auto-increment counter only grows). If y's row was already in the table when x was
 * allocated, step 2 (later than step 1) sees y unless its transaction ended: rolled back (y never exists,
 * nothing to wait for) or committed (then step 1 or the next read has it). That "already in the table"
 * is what the writers ensure: History.append inserts with INSERT … SELECT, which under
 * innodb_autoinc_lock_mode 0 and 1 (MariaDB's default) holds the table's AUTO-INC lock until the end of
 * the statement, so no other statement can take an id between the allocation of y and its row landing in
 * the table. Every insert into task_event goes through History.append.
 *
 * Under innodb_autoinc_lock_mode 2 (interleaved, MySQL 8's default) there is no AUTO-INC lock: an id is
 * taken under a short mutex and its row inserted right after, so a statement stalled between the two (a
 * lock wait in its foreign-key check, a descheduled thread) can still be passed. The API logs a warning at
 * start in that mode (see `checkAutoincLockMode`); run MariaDB/MySQL with mode 1 for the guarantee.
 *
 * SQLite (standalone) needs none of this: one connection, every transaction and every read serialised
 * (see `exclusive`), so ids commit in id order and a reader never sees an open transaction.
 */

/** How far back from the newest committed id a stream "from now on" looks for open transactions. */
export const FROM_NOW_WINDOW = 1000;

/**
 * The events that may be served: those below the lowest id that `dirty` (the ids of a dirty read taken
 * after `committed` was read, over the same range and filter) has and `committed` has not. `held` tells
 * whether any event of `committed` had to wait.
 */
export function servable<E extends { id: number }>(committed: readonly E[], dirty: readonly number[]): { events: E[]; held: boolean; bound: number | null } {
  const seen = new Set(committed.map((e) => e.id));
  let bound: number | null = null;
  for (const id of dirty) if (!seen.has(id) && (bound === null || id < bound)) bound = id;
  if (bound === null) return { events: [...committed], held: false, bound };
  const events = committed.filter((e) => e.id < bound);
  return { events, held: events.length < committed.length, bound };
}

/**
 * The ids in (afterId, upTo] (of tasks of `type`, if given) as a dirty read shows them: committed rows and
 * those of open transactions. Its own short transaction, so that the isolation level cannot outlive it on
 * the pooled connection.
 */
async function dirtyIds(ds: DataSource, afterId: number, upTo: number, type: string | null): Promise<number[]> {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction('READ UNCOMMITTED');
    try {
      const rows: { id: unknown }[] = await runner.query(type === null
        ? 'SELECT id FROM task_event WHERE id > ? AND id <= ?'
        : 'SELECT e.id FROM task_event e JOIN task t ON t.id = e.task_id WHERE e.id > ? AND e.id <= ? AND t.type = ?',
      type === null ? [afterId, upTo] : [afterId, upTo, type]);
      await runner.commitTransaction();
      return rows.map((r) => readId(r.id));
    } catch (err) {
      await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  } finally {
    await runner.release();
  }
}

/**
 * Of `committed` (events after `afterId` just read committed, oldest first, of `type` if given), those
 * that may be served now (see the top of this file).
 */
export async function withoutUncommitted<E extends { id: number }>(ds: DataSource, afterId: number, type: string | null, committed: readonly E[]): Promise<{ events: E[]; held: boolean }> {
  if (dialectOf(ds) !== 'mysql' || committed.length === 0) return { events: [...committed], held: false };
  const dirty = await dirtyIds(ds, afterId, committed[committed.length - 1].id, type);
  return servable(committed, dirty);
}

/**
 * Where a stream "from now on" starts: after the newest committed event, or before the lowest id still
 * uncommitted among the `FROM_NOW_WINDOW` ids below it, so that an event whose transaction is open as the
 * client connects is sent once it commits.
 */
export async function servedFrontier(ds: DataSource, newest: number, read: (afterId: number, upTo: number) => Promise<number[]>): Promise<number> {
  if (dialectOf(ds) !== 'mysql' || newest === 0) return newest;
  const afterId = Math.max(0, newest - FROM_NOW_WINDOW);
  const committed = (await read(afterId, newest)).map((id) => ({ id }));
  const { bound } = servable(committed, await dirtyIds(ds, afterId, newest, null));
  return bound === null ? newest : bound - 1;
}

/**
 * Warns once at start when the server allocates auto-increment ids without the AUTO-INC lock (mode 2),
 * where an event stalled between taking its id and inserting its row can be passed over (see above).
 */
export async function checkAutoincLockMode(ds: DataSource, log: Logger): Promise<void> {
  if (dialectOf(ds) !== 'mysql') return;
  const rows: { mode: unknown }[] = await ds.query('SELECT @@innodb_autoinc_lock_mode AS mode');
  if (Number(rows[0]?.mode) === 2) {
    log.warn({ innodb_autoinc_lock_mode: 2 }, 'innodb_autoinc_lock_mode is 2 (interleaved): GET /events can, rarely, pass over an event whose insert stalled; set it to 1 for the guarantee');
  }
}
