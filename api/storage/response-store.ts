import type { DataSource } from 'typeorm';
import { exclusive } from './database';
import type { EndpointResponse, TaskResponse } from './rows';
import { ENDPOINT_STATE, EndpointState as ResponseState, ShownState, sqlIn, sqlShownIs, sqlWord, storedStatesFor, TaskStatus } from '../lifecycle/states';
import { readId, readJson, readOptionalTime, readTime } from './sql-values';
import type { ResponseRows } from './response-rows';

const COLUMNS = 'r.id, r.task_id, r.endpoint, r.state, r.round, r.status, r.errnr, r.errmsg, r.payload, r.attempts, r.start_time, r.last_modified_time';
const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

export function hydrateResponse(r: Record<string, unknown>): TaskResponse {
  return {
    id: readId(r.id),
    task_id: readId(r.task_id),
    endpoint: String(r.endpoint),
    state: r.state as ResponseState,
    round: Number(r.round),
    status: r.status === null ? null : Number(r.status),
    errnr: Number(r.errnr),
    errmsg: r.errmsg === null ? null : String(r.errmsg),
    payload: readJson(r.payload),
    attempts: Number(r.attempts),
    start_time: readOptionalTime(r.start_time),
    last_modified_time: readTime(r.last_modified_time),
  };
}

export type { EndpointResponse } from './rows';

/**
 * The stored state `pending` stands for both `pending` and `missing` (a pending endpoint of an
 * INCOMPLETE task; a rollout stores `missing`): the SQL conditions on the row and its task that select a shown state.
 */
export function stateCondition(state: ShownState, row = 'r', task = 't'): { sql: string; params: unknown[] } {
  return { sql: sqlShownIs(state, row, task), params: [] };
}

/** Reads of response rows: a task's, an endpoint's, and the counts per state. */
export class ResponseStore {
  constructor(private readonly ds: DataSource, private readonly rows: ResponseRows) {}

  private query(sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    return exclusive(this.ds, () => this.ds.query(sql, params));
  }

  /** Every expected endpoint's row of a task, in the order of its expected endpoints. */
  async listForTask(taskId: number): Promise<TaskResponse[]> {
    const read = async (): Promise<TaskResponse[]> =>
      (await this.query(`SELECT ${COLUMNS} FROM task_response r WHERE r.task_id = ? ORDER BY r.id`, [taskId])).map(hydrateResponse);
    const rows = await read();
    return rows.length === 0 && await this.rows.ensure([taskId]) ? read() : rows;
  }

  /** A page of a task's rows after row `afterId`, in one shown state if given. */
  async pageForTask(taskId: number, taskStatus: TaskStatus, state: ShownState | null, afterId: number, limit: number): Promise<TaskResponse[]> {
    let where = '';
    if (state !== null) {
      const stored = storedStatesFor(state, taskStatus);
      if (stored.length === 0) return [];
      where = ` AND r.state IN ${sqlIn(stored)}`;
    }
    const read = async (): Promise<TaskResponse[]> => (await this.query(
      `SELECT ${COLUMNS} FROM task_response r WHERE r.task_id = ?${where} AND r.id > ? ORDER BY r.id LIMIT ${Math.floor(limit)}`, [taskId, afterId])).map(hydrateResponse);
    const rows = await read();
    return rows.length === 0 && afterId === 0 && await this.rows.ensure([taskId]) ? read() : rows;
  }

  /**
   * An endpoint's rows across tasks, newest task first: before task `beforeTaskId`, within task ids
   * [lo, hi], of one type and one shown state if given.
   */
  async forEndpoint(endpoint: string, o: { state: ShownState | null; type: string | null; lo: number; hi: number; beforeTaskId: number; limit: number }): Promise<EndpointResponse[]> {
    await this.rows.ensureAll();
    const cond = o.state ? stateCondition(o.state) : { sql: '1 = 1', params: [] };
    const rows = await this.query(
      `SELECT ${COLUMNS}, t.type, t.identifier, t.status AS task_status FROM task_response r JOIN task t ON t.id = r.task_id
       WHERE r.endpoint = ? AND ${cond.sql}${o.type ? ' AND t.type = ?' : ''} AND r.task_id >= ? AND r.task_id <= ? AND r.task_id < ?
       ORDER BY r.task_id DESC LIMIT ${Math.floor(o.limit)}`,
      [endpoint, ...cond.params, ...(o.type ? [o.type] : []), o.lo, o.hi, o.beforeTaskId]);
    return rows.map((r) => ({ ...hydrateResponse(r), type: String(r.type), identifier: String(r.identifier), task_status: r.task_status as TaskStatus }));
  }

  /** Whether the endpoint has any row at all (it is known even if its registration expired). */
  async endpointKnown(endpoint: string): Promise<boolean> {
    return (await this.query('SELECT 1 AS x FROM task_response WHERE endpoint = ? LIMIT 1', [endpoint])).length > 0;
  }

  /** How many rows of each task are in each stored state. */
  async stateCounts(taskIds: number[]): Promise<Map<number, Map<ResponseState, number>>> {
    const out = await this.countStates(taskIds);
    const without = taskIds.filter((id) => !out.has(id));
    return without.length > 0 && await this.rows.ensure(without) ? this.countStates(taskIds) : out;
  }

  private async countStates(taskIds: number[]): Promise<Map<number, Map<ResponseState, number>>> {
    const out = new Map<number, Map<ResponseState, number>>();
    if (taskIds.length === 0) return out;
    const rows = await this.query(`SELECT task_id, state, COUNT(*) AS n FROM task_response WHERE task_id IN (${marks(taskIds.length)})
      GROUP BY task_id, state`, taskIds);
    for (const r of rows) {
      const id = readId(r.task_id);
      const m = out.get(id) ?? new Map<ResponseState, number>();
      m.set(r.state as ResponseState, Number(r.n));
      out.set(id, m);
    }
    return out;
  }

  /**
   * What the endpoint must not run, newest task first: each task's cancelled round, or, for a task retried
   * while its previous round never finished (that copy may still wait in the endpoint's queue), the round
   * before the current one. An entry (task, round) stands for every round up to `round`.
   */
  async cancelledFor(endpoint: string, limit: number): Promise<{ task_id: number; round: number }[]> {
    const cancelled = sqlWord(ENDPOINT_STATE.CANCELLED);
    const rows = await this.query(`SELECT task_id, CASE WHEN state = ${cancelled} THEN round ELSE round - 1 END AS round FROM task_response
      WHERE endpoint = ? AND state IN ${sqlIn([ENDPOINT_STATE.CANCELLED, ENDPOINT_STATE.PENDING, ENDPOINT_STATE.MISSING])}
        AND (state = ${cancelled} OR round > 0)
      ORDER BY task_id DESC LIMIT ${Math.floor(limit)}`, [endpoint]);
    return rows.map((r) => ({ task_id: readId(r.task_id), round: Number(r.round) }));
  }
}
