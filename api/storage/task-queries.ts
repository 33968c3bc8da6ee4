import type { DataSource } from 'typeorm';
import { exclusive } from './database';
import type { Task } from './rows';
import { EndpointState, ShownState, storedForms, TaskStatus } from '../lifecycle/states';
import { readId, sqlTime } from './sql-values';
import type { ResponseRows } from './response-rows';
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

export interface TaskPage {
  tasks: Task[];
  /** Where the next page starts (tasks with a smaller id), or null at the end. */
  next: number | null;
}

/** `%` and `_` are LIKE's wildcards, and identifiers may contain `_`; `!` escapes them (and itself) in both dialects. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}

/** Response rows read per step when the list is driven by them. */
const STEP = 500;
/** Steps one page may take before it answers what it found, with a cursor to go on from. */
const MAX_STEPS = 20;

/**
 * Finding tasks, newest (highest id) first, with keyset pagination; every filter is served by an index.
 * Without an endpoint or a state, the tasks are read by ix_task_type / ix_task_type_status. With them, the
 * response rows are read newest first by ix_response_endpoint_state, ix_response_endpoint or
 * ix_response_state, and their tasks checked against the other filters, step by step: a page then may hold
 * fewer tasks than `limit` although more follow (its cursor says where to go on).
 */
export class TaskQueries {
  constructor(private readonly ds: DataSource, private readonly responseRows: ResponseRows) {}

  private query(sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    return exclusive(this.ds, () => this.ds.query(sql, params));
  }

  /**
   * The id range of tasks stored in [since, until): the first task at or after `since` and the last one
   * before `until`, by the start_time index (ids grow in the order tasks are stored).
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

  /** The conditions on the task row itself. */
  private taskConditions(type: string, f: TaskFilter, statuses: readonly TaskStatus[] | null): { where: string[]; params: unknown[] } {
    const where = ['t.type = ?'];
    const params: unknown[] = [type];
    if (f.since) { where.push('t.start_time >= ?'); params.push(sqlTime(f.since)); }
    if (f.until) { where.push('t.start_time < ?'); params.push(sqlTime(f.until)); }
    if (f.status) { where.push('t.status = ?'); params.push(f.status); }
    if (statuses) { where.push(`t.status IN (${statuses.map(() => '?').join(', ')})`); params.push(...statuses); }
    if (f.identifierPrefix) { where.push("t.identifier LIKE ? ESCAPE '!'"); params.push(likePrefix(f.identifierPrefix)); }
    return { where, params };
  }

  async list(type: string, f: TaskFilter): Promise<TaskPage> {
    const { lo, hi } = await this.idRange(f.since, f.until);
    if (lo > hi) return { tasks: [], next: null };
    if (f.endpoint === null && f.state === null) {
      const c = this.taskConditions(type, f, null);
      // Only the bounds that bound something: an id range over everything would lead the optimizer to
      // walk the primary key instead of the (type, status) index.
      const bounds = [[lo > 0, 't.id >= ?', lo], [hi < Number.MAX_SAFE_INTEGER, 't.id <= ?', hi],
        [f.beforeId < Number.MAX_SAFE_INTEGER, 't.id < ?', f.beforeId]].filter(([used]) => used) as [boolean, string, number][];
      const rows = await this.query(`SELECT ${taskColumns('t')} FROM task t WHERE ${[...c.where, ...bounds.map(([, sql]) => sql)].join(' AND ')}
        ORDER BY t.id DESC LIMIT ${Math.floor(f.limit) + 1}`, [...c.params, ...bounds.map(([, , v]) => v)]);
      const tasks = rows.map(hydrateTask);
      return { tasks: tasks.slice(0, f.limit), next: tasks.length > f.limit ? tasks[f.limit - 1].id : null };
    }
    if (f.state === null) return this.listByResponses(type, f, lo, hi, null);
    const pages = await Promise.all(storedForms(f.state).map((rs) => this.listByResponses(type, f, lo, hi, rs)));
    if (pages.length === 1) return pages[0];
    // Merged: newest first, each task once, up to where every page is complete (the lowest cursor).
    const floor = Math.max(...pages.map((p) => (p.next === null ? 0 : p.next)));
    const byId = new Map<number, Task>();
    for (const p of pages) for (const t of p.tasks) if (t.id >= floor || floor === 0) byId.set(t.id, t);
    const merged = [...byId.values()].filter((t) => floor === 0 || t.id >= floor).sort((a, b) => b.id - a.id);
    if (merged.length > f.limit) return { tasks: merged.slice(0, f.limit), next: merged[f.limit - 1].id };
    return { tasks: merged, next: floor === 0 ? null : floor };
  }

  private async listByResponses(type: string, f: TaskFilter, lo: number, hi: number, rs: { state: EndpointState; statuses: readonly TaskStatus[] | null } | null): Promise<TaskPage> {
    const rowWhere = [...(f.endpoint !== null ? ['endpoint = ?'] : []), ...(rs ? ['state = ?'] : [])];
    const rowParams = [...(f.endpoint !== null ? [f.endpoint] : []), ...(rs ? [rs.state] : [])];
    const c = this.taskConditions(type, f, rs?.statuses ?? null);
    const found: Task[] = [];
    await this.responseRows.ensureAll();
    let before = Math.min(f.beforeId, hi + 1);
    for (let step = 0; step < MAX_STEPS; step++) {
      const rows = await this.query(`SELECT DISTINCT task_id FROM task_response WHERE ${rowWhere.join(' AND ')} AND task_id < ? AND task_id >= ?
        ORDER BY task_id DESC LIMIT ${STEP}`, [...rowParams, before, lo]);
      if (rows.length === 0) return { tasks: found.slice(0, f.limit), next: found.length > f.limit ? found[f.limit - 1].id : null };
      const ids = rows.map((r) => readId(r.task_id));
      const tasks = await this.query(`SELECT ${taskColumns('t')} FROM task t WHERE t.id IN (${ids.map(() => '?').join(', ')}) AND ${c.where.join(' AND ')}
        ORDER BY t.id DESC`, [...ids, ...c.params]);
      found.push(...tasks.map(hydrateTask));
      if (found.length > f.limit) return { tasks: found.slice(0, f.limit), next: found[f.limit - 1].id };
      before = ids[ids.length - 1];
      if (rows.length < STEP) return { tasks: found, next: null };
    }
    // Enough reading for one answer: what was found, and where the next page goes on from.
    return { tasks: found, next: before };
  }
}
