import type { DataSource } from 'typeorm';
import { ENDED_STATUSES } from '../lifecycle/states';
import { dialectOf, guardDb, transaction } from './database';
import { retryScope } from './operations';
import { readId, sqlTime } from './sql-values';

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

/**
 * The removal of ended tasks, one short transaction per batch. A task is due when it is in a final state
 * and has not changed since the cutoff: `last_modified_time` is its end, or the late response that came
 * after it (the index on status and last_modified_time serves the selection). A task that has not ended
 * is never due, however old.
 */
export class RetentionStore {
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /**
   * Removes at most `limit` due tasks with their responses, history and stored retry answers; answers
   * how many. With SKIP LOCKED, instances running this at once take different tasks, and a task that a
   * late response or a retry holds is left for the next batch rather than waited for.
   */
  removeBatch(cutoff: Date, limit: number): Promise<number> {
    return guardDb(() => transaction(this.ds, async (em) => {
      const rows: { id: unknown }[] = await em.query(
        `SELECT id FROM task WHERE status IN (${marks(ENDED_STATUSES.length)}) AND last_modified_time < ?
         LIMIT ${Math.trunc(limit)}${this.mysql ? ' FOR UPDATE SKIP LOCKED' : ''}`,
        [...ENDED_STATUSES, sqlTime(cutoff)]);
      if (rows.length === 0) return 0;
      const ids = rows.map((r) => readId(r.id));
      const list = marks(ids.length);
      await em.query(`DELETE FROM task_event WHERE task_id IN (${list})`, ids);
      await em.query(`DELETE FROM request_key WHERE scope IN (${list})`, ids.map(retryScope));
      await em.query(`DELETE FROM task_response WHERE task_id IN (${list})`, ids);
      await em.query(`DELETE FROM task_output WHERE task_id IN (${list})`, ids);
      await em.query(`DELETE FROM task WHERE id IN (${list})`, ids);
      return ids.length;
    }));
  }
}
