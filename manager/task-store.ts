import { DataSource, EntityManager } from 'typeorm';
import { Task, TaskStatus } from './entities/task';
import { dialectOf, exclusive, insertedId, isDuplicateKey, transaction } from './database';
import { readJson, readOptionalTime, readTime, sqlTime, writeJson } from './sql-values';

export interface NewTask {
  type: string;
  identifier: string;
  payload: unknown;
  endpoints: string[] | null;
  expected: string[];
  requestHash: string;
  now: Date;
}

const TASK_COLUMNS = `id, identifier, type, status, payload, endpoints, expected_endpoints, expected_count,
  received_count, finished_count, failed_count, request_hash, start_time, sent_time, end_time, last_modified_time`;

export function hydrateTask(row: Record<string, unknown>): Task {
  return {
    id: Number(row.id),
    identifier: String(row.identifier),
    type: String(row.type),
    status: row.status as TaskStatus,
    payload: readJson(row.payload),
    endpoints: readJson<string[] | null>(row.endpoints),
    expected_endpoints: readJson<string[]>(row.expected_endpoints),
    expected_count: Number(row.expected_count),
    received_count: Number(row.received_count),
    finished_count: Number(row.finished_count),
    failed_count: Number(row.failed_count),
    request_hash: String(row.request_hash),
    start_time: readTime(row.start_time),
    sent_time: readOptionalTime(row.sent_time),
    end_time: readOptionalTime(row.end_time),
    last_modified_time: readTime(row.last_modified_time),
  };
}

/** Storage of tasks: creation, lookup and the status transitions the API drives. */
export class TaskStore {
  constructor(private readonly ds: DataSource) {}

  /** Inserts the task; on a repeated identifier returns the existing one with `created: false`. */
  async create(t: NewTask): Promise<{ task: Task; created: boolean }> {
    const row = {
      identifier: t.identifier, type: t.type, status: 'CREATED' as const, payload: writeJson(t.payload),
      endpoints: writeJson(t.endpoints), expected_endpoints: writeJson(t.expected), expected_count: t.expected.length,
      request_hash: t.requestHash, start_time: sqlTime(t.now), last_modified_time: sqlTime(t.now),
    };
    const columns = Object.keys(row);
    try {
      const raw: unknown = await exclusive(this.ds, () => this.ds.query(
        `INSERT INTO task (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, Object.values(row)));
      return {
        task: {
          ...row, id: insertedId(raw), payload: t.payload, endpoints: t.endpoints, expected_endpoints: t.expected, received_count: 0,
          finished_count: 0, failed_count: 0, start_time: t.now, sent_time: null, end_time: null, last_modified_time: t.now,
        },
        created: true,
      };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const existing = await this.find(t.type, t.identifier);
      if (!existing) throw err;
      return { task: existing, created: false };
    }
  }

  private async selectOne(where: string, params: unknown[]): Promise<Task | null> {
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () =>
      this.ds.query(`SELECT ${TASK_COLUMNS} FROM task WHERE ${where}`, params));
    return rows.length ? hydrateTask(rows[0]) : null;
  }

  find(type: string, identifier: string): Promise<Task | null> {
    return this.selectOne('type = ? AND identifier = ?', [type, identifier]);
  }

  findById(id: number): Promise<Task | null> {
    return this.selectOne('id = ?', [id]);
  }

  /**
   * Records the broker's confirm. Only CREATED becomes SENT: a task may already be DONE when a fast
   * endpoint finished before the confirm arrived.
   */
  async markSent(ids: number[], now: Date, em?: EntityManager): Promise<void> {
    if (ids.length === 0) return;
    const update = (m: EntityManager): Promise<unknown> => m.query(
      `UPDATE task SET status = CASE WHEN status = 'CREATED' THEN 'SENT' ELSE status END,
       sent_time = COALESCE(sent_time, ?), last_modified_time = ? WHERE id IN (${ids.map(() => '?').join(', ')})`,
      [sqlTime(now), sqlTime(now), ...ids]);
    await (em ? update(em) : exclusive(this.ds, () => update(this.ds.manager)));
  }

  /**
   * Claims a batch of tasks to (re)send, in id order after `afterId`, and hands them to `send` inside
   * the claiming transaction. On MySQL the rows are locked with SKIP LOCKED, so several API instances
   * never pick the same task at once.
   * - `unsent`: CREATED (the broker never confirmed them) since before `before`;
   * - `unfinished`: some expected endpoint has not finished them (for a transport that keeps nothing
   *   across a restart).
   */
  async claim(
    selection: { kind: 'unsent'; before: Date } | { kind: 'unfinished' },
    afterId: number, limit: number,
    send: (tasks: Task[], em: EntityManager) => Promise<void>,
  ): Promise<Task[]> {
    const lock = dialectOf(this.ds) === 'mysql' ? ' FOR UPDATE SKIP LOCKED' : '';
    const [where, params] = selection.kind === 'unsent'
      ? [`status = 'CREATED' AND start_time < ?`, [sqlTime(selection.before)]]
      : ['finished_count < expected_count', []];
    return transaction(this.ds, async (em) => {
      const rows: Record<string, unknown>[] = await em.query(
        `SELECT ${TASK_COLUMNS} FROM task WHERE ${where} AND id > ? ORDER BY id LIMIT ${Math.floor(limit)}${lock}`,
        [...params, afterId]);
      const tasks = rows.map(hydrateTask);
      if (tasks.length) await send(tasks, em);
      return tasks;
    });
  }
}
