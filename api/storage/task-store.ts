import { DataSource, EntityManager } from 'typeorm';
import { Task, TaskStatus } from './entities/task';
import { dialectOf, exclusive, isDuplicateKey, transaction } from './database';
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

  /**
   * Inserts tasks in one transaction; an identifier that exists already (or twice in the batch) gives
   * the stored task with `created: false`. One result per item, in order.
   */
  async createMany(items: NewTask[]): Promise<{ task: Task; created: boolean }[]> {
    try {
      return await transaction(this.ds, (em) => this.insertBatch(em, items));
    } catch (err) {
      // Another API instance inserted one of these identifiers since we looked: go one by one.
      if (!isDuplicateKey(err)) throw err;
      if (items.length === 1) {
        const existing = await this.find(items[0].type, items[0].identifier);
        if (!existing) throw err;
        return [{ task: existing, created: false }];
      }
      const results: { task: Task; created: boolean }[] = [];
      for (const item of items) results.push(...await this.createMany([item]));
      return results;
    }
  }

  private async selectByIdentifiers(em: EntityManager, type: string, identifiers: string[]): Promise<Map<string, Task>> {
    const rows: Record<string, unknown>[] = await em.query(
      `SELECT ${TASK_COLUMNS} FROM task WHERE type = ? AND identifier IN (${identifiers.map(() => '?').join(', ')})`, [type, ...identifiers]);
    return new Map(rows.map((r) => [String(r.identifier), hydrateTask(r)]));
  }

  private async insertBatch(em: EntityManager, items: NewTask[]): Promise<{ task: Task; created: boolean }[]> {
    const byType = new Map<string, NewTask[]>();
    for (const item of items) byType.set(item.type, [...byType.get(item.type) ?? [], item]);
    const stored = new Map<string, Task>();
    const fresh = new Map<string, NewTask>();
    for (const [type, group] of byType) {
      const existing = await this.selectByIdentifiers(em, type, [...new Set(group.map((g) => g.identifier))]);
      for (const g of group) {
        const key = `${type}/${g.identifier}`;
        const found = existing.get(g.identifier);
        if (found) stored.set(key, found);
        else if (!fresh.has(key)) fresh.set(key, g);
      }
    }
    if (fresh.size > 0) {
      const rows = [...fresh.values()].map((t) => [
        t.identifier, t.type, 'CREATED', writeJson(t.payload), writeJson(t.endpoints), writeJson(t.expected), t.expected.length,
        t.requestHash, sqlTime(t.now), sqlTime(t.now)]);
      await em.query(`INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count,
        request_hash, start_time, last_modified_time) VALUES ${rows.map((r) => `(${r.map(() => '?').join(', ')})`).join(', ')}`, rows.flat());
      for (const [type, group] of byType) {
        const mine = group.filter((g) => fresh.get(`${type}/${g.identifier}`) === g).map((g) => g.identifier);
        if (mine.length === 0) continue;
        for (const [identifier, task] of await this.selectByIdentifiers(em, type, mine)) stored.set(`${type}/${identifier}`, task);
      }
    }
    return items.map((item) => {
      const key = `${item.type}/${item.identifier}`;
      const task = stored.get(key);
      if (!task) throw new Error(`task ${key} not found after insert`);
      return { task, created: fresh.get(key) === item };
    });
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
