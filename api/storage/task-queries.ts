import type { DataSource } from 'typeorm';
import { exclusive } from './database';
import type { Task, TaskStatus } from './entities/task';
import type { ShownState } from './entities/task-response';
import { stateCondition } from './response-store';
import { readId, sqlTime } from './sql-values';
import { hydrateTask, taskColumns } from './task-store';

export interface TaskFilter {
  status: TaskStatus | null;
  /** Tasks that expect this endpoint. */
  endpoint: string | null;
  /** Tasks with at least one endpoint in this state (of `endpoint`, if given). */
  state: ShownState | null;
  since: Date | null;
  until: Date | null;
  identifierPrefix: string | null;
  /** Keyset pagination: tasks with a smaller id than this. */
  beforeId: number;
  limit: number;
}

/** `%` and `_` are LIKE's wildcards, and identifiers may contain `_`; `!` escapes them (and itself) in both dialects. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}

/**
 * Finding tasks, newest (highest id) first, with keyset pagination. Every filter is served by an index:
 * type and status by ix_task_type_status, an endpoint and a state through the response rows'
 * ix_response_endpoint_state / ix_response_state, an identifier prefix by the unique (type, identifier),
 * and a time range by ix_task_start, turned into bounds on the id (ids grow in the order tasks are stored).
 */
export class TaskQueries {
  constructor(private readonly ds: DataSource) {}

  private query(sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    return exclusive(this.ds, () => this.ds.query(sql, params));
  }

  /**
   * The id range of tasks stored in [since, until): the first task at or after `since` and the last one
   * before `until`, by the start_time index.
   */
  async idRange(since: Date | null, until: Date | null): Promise<{ lo: number; hi: number }> {
    let lo = 0;
    let hi = Number.MAX_SAFE_INTEGER;
    if (since) {
      const rows = await this.query('SELECT id FROM task WHERE start_time >= ? ORDER BY start_time, id LIMIT 1', [sqlTime(since)]);
      lo = rows.length ? readId(rows[0].id) : Number.MAX_SAFE_INTEGER;
    }
    if (until) {
      const rows = await this.query('SELECT id FROM task WHERE start_time < ? ORDER BY start_time DESC, id DESC LIMIT 1', [sqlTime(until)]);
      hi = rows.length ? readId(rows[0].id) : 0;
    }
    return { lo, hi };
  }

  async list(type: string, f: TaskFilter): Promise<Task[]> {
    const { lo, hi } = await this.idRange(f.since, f.until);
    if (lo > hi) return [];
    const where = ['t.type = ?', 't.id >= ?', 't.id <= ?', 't.id < ?'];
    const params: unknown[] = [type, lo, hi, f.beforeId];
    if (f.since) { where.push('t.start_time >= ?'); params.push(sqlTime(f.since)); }
    if (f.until) { where.push('t.start_time < ?'); params.push(sqlTime(f.until)); }
    if (f.status) { where.push('t.status = ?'); params.push(f.status); }
    if (f.identifierPrefix) { where.push("t.identifier LIKE ? ESCAPE '!'"); params.push(likePrefix(f.identifierPrefix)); }
    if (f.endpoint !== null || f.state !== null) {
      const cond = f.state ? stateCondition(f.state) : { sql: '1 = 1', params: [] };
      const byEndpoint = f.endpoint !== null ? 'r.endpoint = ? AND ' : '';
      where.push(`EXISTS (SELECT 1 FROM task_response r WHERE r.task_id = t.id AND ${byEndpoint}${cond.sql})`);
      params.push(...(f.endpoint !== null ? [f.endpoint] : []), ...cond.params);
    }
    const rows = await this.query(`SELECT ${taskColumns('t')} FROM task t WHERE ${where.join(' AND ')}
      ORDER BY t.id DESC LIMIT ${Math.floor(f.limit)}`, params);
    return rows.map(hydrateTask);
  }
}
