import { DataSource, EntityManager } from 'typeorm';
import { Task, TaskEntity, TaskStatus } from './entities/task';
import { dialectOf, insertedId, isDuplicateKey } from './database';
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
    try {
      const columns = Object.keys(row);
      const raw: unknown = await this.ds.query(
        `INSERT INTO task (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, Object.values(row));
      const id = insertedId(raw);
      return {
        task: {
          ...row, id, payload: t.payload, endpoints: t.endpoints, expected_endpoints: t.expected, received_count: 0,
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

  async find(type: string, identifier: string): Promise<Task | null> {
    const rows: Record<string, unknown>[] = await this.ds.query(
      `SELECT ${TASK_COLUMNS} FROM task WHERE type = ? AND identifier = ?`, [type, identifier]);
    return rows.length ? hydrateTask(rows[0]) : null;
  }

  async findById(id: number): Promise<Task | null> {
    const rows: Record<string, unknown>[] = await this.ds.query(`SELECT ${TASK_COLUMNS} FROM task WHERE id = ?`, [id]);
    return rows.length ? hydrateTask(rows[0]) : null;
  }

  /**
   * Records the broker's confirm. Only CREATED becomes SENT: a task may already be DONE when a fast
   * endpoint finished before the confirm arrived.
   */
  async markSent(ids: number[], now: Date, em: EntityManager = this.ds.manager): Promise<void> {
    if (ids.length === 0) return;
    await em.createQueryBuilder().update(TaskEntity)
      .set({
        status: () => `CASE WHEN status = 'CREATED' THEN 'SENT' ELSE status END`,
        sent_time: () => `COALESCE(sent_time, :now)`,
        last_modified_time: () => ':now',
      })
      .where('id IN (:...ids)', { ids })
      .setParameters({ now: sqlTime(now) })
      .execute();
  }

  /**
   * Claims tasks the broker never confirmed, older than `before`, and hands them to `send` inside the
   * claiming transaction. On MySQL the rows are locked with SKIP LOCKED, so several API instances never
   * pick the same task at once.
   */
  async withUnsent(before: Date, limit: number, send: (tasks: Task[], em: EntityManager) => Promise<void>): Promise<number> {
    const lock = dialectOf(this.ds) === 'mysql' ? ' FOR UPDATE SKIP LOCKED' : '';
    return this.ds.transaction(async (em) => {
      const rows: Record<string, unknown>[] = await em.query(
        `SELECT ${TASK_COLUMNS} FROM task WHERE status = 'CREATED' AND start_time < ? ORDER BY status, start_time LIMIT ${Math.floor(limit)}${lock}`,
        [sqlTime(before)]);
      if (rows.length) await send(rows.map(hydrateTask), em);
      return rows.length;
    });
  }
}
