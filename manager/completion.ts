import type { DataSource, EntityManager } from 'typeorm';
import { dialectOf, transaction } from './database';
import { sqlTime, writeJson } from './sql-values';
import { UnknownTaskError } from './errors';

/**
 * Completion without races: a task's counters are moved by single UPDATE statements in the same
 * transaction that changes a response row, so the database serialises concurrent endpoints on the task
 * row and exactly one of them sees `finished_count + 1 >= expected_count`. Nothing is read, decided in
 * Node, and written back.
 */

export interface HandlerResult {
  payload: unknown;
  errnr: number;
  errmsg: string | null;
}

export type ReceiveOutcome =
  /** Run the handler (attempt `attempt`). */
  | { action: 'run'; attempt: number }
  /** The response is already finished: a redelivery; do not run again. */
  | { action: 'finished' }
  /** The handler was started `max_attempts` times without finishing: finish it as failed. */
  | { action: 'exhausted'; attempts: number };

/** Result of a modifying statement, the same shape on MySQL and SQLite. */
async function execute(em: EntityManager, sql: string, params: unknown[]): Promise<number> {
  const runner = em.queryRunner;
  if (!runner) throw new Error('execute() needs a transactional EntityManager');
  const result = await runner.query(sql, params, true) as { affected?: number };
  return result.affected ?? 0;
}

/**
 * Every expression reads the old row whatever the engine: MySQL applies SET left to right, so the
 * assignments that test `status` and `finished_count` come before the ones that change them; SQLite and
 * MariaDB's SIMULTANEOUS_ASSIGNMENT mode read the old row anyway.
 */
const FINISH_TASK = `UPDATE task SET
  end_time = CASE WHEN status IN ('CREATED', 'SENT', 'INCOMPLETE') AND finished_count + 1 >= expected_count THEN ? ELSE end_time END,
  status = CASE WHEN status IN ('CREATED', 'SENT', 'INCOMPLETE') AND finished_count + 1 >= expected_count THEN 'DONE' ELSE status END,
  failed_count = failed_count + ?,
  finished_count = finished_count + 1,
  last_modified_time = ?
  WHERE id = ?`;

export class Completion {
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /**
   * Every transaction that touches a task's responses locks the task row first. One lock order means
   * no deadlocks (inserting a response would otherwise take a shared lock on the task through the
   * foreign key before upgrading it), and it serialises the endpoints of one task, not of all tasks.
   */
  private async lockTask(em: EntityManager, taskId: number): Promise<void> {
    if (!this.mysql) return; // SQLite serialises writers itself
    const rows: unknown[] = await em.query('SELECT id FROM task WHERE id = ? FOR UPDATE', [taskId]);
    if (rows.length === 0) throw new UnknownTaskError(taskId);
  }

  /**
   * Records that `endpoint` received task `taskId`: creates its response row (status 0) or, for a
   * redelivery, decides from the existing row. A task id that does not exist fails with the driver's
   * foreign-key error.
   */
  receive(taskId: number, endpoint: string, now: Date, maxAttempts: number): Promise<ReceiveOutcome> {
    const t = sqlTime(now);
    return transaction(this.ds, async (em) => {
      await this.lockTask(em, taskId);
      // The task row is locked and known to exist, so IGNORE can only skip the duplicate. (mysql2 reports
      // found rather than changed rows, so ON DUPLICATE KEY UPDATE could not tell a duplicate apart.)
      const insert = `INSERT ${this.mysql ? 'IGNORE ' : ''}INTO task_response
        (task_id, endpoint, status, errnr, attempts, start_time, last_modified_time) VALUES (?, ?, 0, 0, 1, ?, ?)
        ${this.mysql ? '' : 'ON CONFLICT (task_id, endpoint) DO NOTHING'}`;
      if (await execute(em, insert, [taskId, endpoint, t, t]) === 1) {
        await execute(em, `UPDATE task SET received_count = received_count + 1, last_modified_time = ? WHERE id = ?`, [t, taskId]);
        return { action: 'run', attempt: 1 };
      }
      const rows: { status: number; attempts: number }[] = await em.query(
        `SELECT status, attempts FROM task_response WHERE task_id = ? AND endpoint = ?${this.mysql ? ' FOR UPDATE' : ''}`,
        [taskId, endpoint]);
      const row = rows[0];
      if (!row) throw new Error(`response of task ${taskId} at ${endpoint} vanished`);
      if (Number(row.status) === 1) return { action: 'finished' };
      const attempts = Number(row.attempts);
      if (attempts >= maxAttempts) return { action: 'exhausted', attempts };
      await execute(em, `UPDATE task_response SET attempts = attempts + 1, last_modified_time = ? WHERE task_id = ? AND endpoint = ?`,
        [t, taskId, endpoint]);
      return { action: 'run', attempt: attempts + 1 };
    });
  }

  /**
   * Finishes the response and counts it on the task, once: a second call for the same response changes
   * nothing and returns false.
   */
  finish(taskId: number, endpoint: string, result: HandlerResult, now: Date): Promise<boolean> {
    const t = sqlTime(now);
    return transaction(this.ds, async (em) => {
      await this.lockTask(em, taskId);
      const changed = await execute(em,
        `UPDATE task_response SET status = 1, errnr = ?, errmsg = ?, payload = ?, last_modified_time = ?
         WHERE task_id = ? AND endpoint = ? AND status = 0`,
        [result.errnr, result.errmsg, writeJson(result.payload), t, taskId, endpoint]);
      if (changed !== 1) return false;
      await execute(em, FINISH_TASK, [t, result.errnr === 0 ? 0 : 1, t, taskId]);
      return true;
    });
  }

  /**
   * INCOMPLETE: sent more than `timeout` ago and some expected endpoint has not received it. Decided
   * from the database alone, so any API instance may run it, any number of times.
   */
  async sweepIncomplete(now: Date, timeoutMs: number): Promise<number> {
    return transaction(this.ds, (em) => execute(em,
      `UPDATE task SET status = 'INCOMPLETE', last_modified_time = ?
       WHERE status = 'SENT' AND sent_time < ? AND received_count < expected_count`,
      [sqlTime(now), sqlTime(new Date(now.getTime() - timeoutMs))]));
  }
}
