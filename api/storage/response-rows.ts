import type { DataSource, EntityManager } from 'typeorm';
import type { Rollout, Task } from './rows';
import { ENDPOINT_STATE } from '../lifecycle/states';
import { dialectOf, exclusive, transaction } from './database';
import { readId, readJson, readTime, sqlTime } from './sql-values';

/** What writing a task's rows needs of it. */
export type RowsOf = Pick<Task, 'id' | 'expected_endpoints' | 'rollout' | 'start_time'>;

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
/** Response rows inserted per statement (a broadcast to a large fleet has one per endpoint). */
const ROWS_PER_INSERT = 2000;
/** Tasks without rows handled per pass of `ensureAll`. */
const ENSURE_ALL_BATCH = 100;

/**
 * The response rows of tasks: one per expected endpoint, written `pending` (a rollout's endpoints after its
 * first batch `queued`) before anything is heard.
 *
 * A task expecting many endpoints is stored without them (`task.rows_pending` = 1), so that its POST writes
 * one row, not thousands, and holds a database connection for moments. Its rows are written afterwards,
 * in one transaction per task (the publisher sends large tasks one at a time), and always before the task's
 * first send, so no endpoint answers a task whose rows are not there. Whatever else reaches such a task
 * first writes them, under the task's lock, before it reads or changes any: every writer (Completion.lock,
 * the resend job's claim) and every reader of a task's rows that finds none (`ensure`), or of an
 * endpoint's rows across tasks (`ensureAll`). So what one GET shows is the same as had they been written
 * with the task.
 */
export class ResponseRows {
  constructor(private readonly ds: DataSource) {}

  /** Inserts the rows of new tasks, in the caller's transaction. */
  static async insert(em: EntityManager, tasks: readonly RowsOf[]): Promise<void> {
    const rows = tasks.flatMap((t) => t.expected_endpoints.map((ep, i) => [
      t.id, ep, t.rollout && i >= t.rollout.batch_size ? ENDPOINT_STATE.QUEUED : ENDPOINT_STATE.PENDING, sqlTime(t.start_time)]));
    for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
      const chunk = rows.slice(i, i + ROWS_PER_INSERT);
      await em.query(`INSERT INTO task_response (task_id, endpoint, state, round, status, errnr, attempts, last_modified_time)
        VALUES ${chunk.map(() => '(?, ?, ?, 0, NULL, 0, 0, ?)').join(', ')}`, chunk.flat());
    }
  }

  /**
   * Writes the rows of those of these tasks still without, in the caller's transaction, which holds (or
   * here takes) their locks. Returns the ids it wrote rows for.
   */
  async writeIn(em: EntityManager, ids: readonly number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const sorted = [...new Set(ids)].sort((a, b) => a - b);
    const found: Record<string, unknown>[] = await em.query(
      `SELECT id, expected_endpoints, rollout, start_time FROM task WHERE id IN (${marks(sorted.length)}) AND rows_pending = 1
       ORDER BY id${dialectOf(this.ds) === 'mysql' ? ' FOR UPDATE' : ''}`, sorted);
    if (found.length === 0) return [];
    const tasks = found.map((r): RowsOf => ({
      id: readId(r.id), expected_endpoints: readJson<string[]>(r.expected_endpoints), rollout: readJson<Rollout | null>(r.rollout ?? null), start_time: readTime(r.start_time),
    }));
    await ResponseRows.insert(em, tasks);
    await em.query(`UPDATE task SET rows_pending = 0 WHERE id IN (${marks(tasks.length)})`, tasks.map((t) => t.id));
    return tasks.map((t) => t.id);
  }

  /** `writeIn`, in a transaction of its own. */
  write(ids: readonly number[]): Promise<number[]> {
    return transaction(this.ds, (em) => this.writeIn(em, ids));
  }

  /** For a reader that found no rows for some of these tasks: writes those that have none yet; whether any. */
  async ensure(ids: readonly number[]): Promise<boolean> {
    if (ids.length === 0) return false;
    const pending: { id: unknown }[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT id FROM task WHERE id IN (${marks(ids.length)}) AND rows_pending = 1`, [...ids]));
    if (pending.length === 0) return false;
    await this.write(pending.map((r) => readId(r.id)));
    return true;
  }

  /** For a reader of an endpoint's rows across tasks: every task without rows gets them first (there are few, briefly). */
  async ensureAll(): Promise<void> {
    for (;;) {
      const pending: { id: unknown }[] = await exclusive(this.ds, () => this.ds.query(
        `SELECT id FROM task WHERE rows_pending = 1 ORDER BY id LIMIT ${ENSURE_ALL_BATCH}`, []));
      if (pending.length === 0) return;
      await this.write(pending.map((r) => readId(r.id)));
      if (pending.length < ENSURE_ALL_BATCH) return;
    }
  }
}
