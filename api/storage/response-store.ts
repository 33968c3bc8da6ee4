import type { DataSource } from 'typeorm';
import { exclusive } from './database';
import type { TaskResponse } from './entities/task-response';
import { readJson, readTime } from './sql-values';

export class ResponseStore {
  constructor(private readonly ds: DataSource) {}

  /** The responses of the task with this type and identifier, by the same unique key the task is found by. */
  async listForTask(type: string, identifier: string): Promise<TaskResponse[]> {
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT r.id, r.task_id, r.endpoint, r.status, r.errnr, r.errmsg, r.payload, r.attempts, r.start_time, r.last_modified_time
       FROM task t JOIN task_response r ON r.task_id = t.id WHERE t.type = ? AND t.identifier = ? ORDER BY r.id`, [type, identifier]));
    return rows.map((r) => ({
      id: Number(r.id),
      task_id: Number(r.task_id),
      endpoint: String(r.endpoint),
      status: Number(r.status),
      errnr: Number(r.errnr),
      errmsg: r.errmsg === null ? null : String(r.errmsg),
      payload: readJson(r.payload),
      attempts: Number(r.attempts),
      start_time: readTime(r.start_time),
      last_modified_time: readTime(r.last_modified_time),
    }));
  }
}
