import type { DataSource } from 'typeorm';
import { exclusive } from './database';
import type { TaskResponse } from './entities/task-response';
import { readJson, readTime } from './sql-values';

export class ResponseStore {
  constructor(private readonly ds: DataSource) {}

  async listForTask(taskId: number): Promise<TaskResponse[]> {
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT id, task_id, endpoint, status, errnr, errmsg, payload, attempts, start_time, last_modified_time
       FROM task_response WHERE task_id = ? ORDER BY id`, [taskId]));
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
