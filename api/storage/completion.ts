import type { DataSource, EntityManager } from 'typeorm';
import type { ResponseEvent } from '../../protocol/wire';
import { ERRNR_ATTEMPTS_EXHAUSTED } from '../../protocol/wire';
import { dialectOf, transaction } from './database';
import { readJson, sqlTime, writeJson } from './sql-values';

/**
 * Completion without races. Every writer of response rows (the collector storing events, the state
 * responder recording attempts) first locks the rows of the tasks concerned, in ascending id order (one
 * lock order for every transaction, so several collectors never deadlock each other), and moves the
 * tasks' counters with UPDATE statements in the same transaction. So with any number of endpoints
 * finishing at once, exactly one transaction sees `finished_count + n >= expected_count` and makes the
 * task DONE. Everything is done in batches: one transaction for many events.
 */

export interface ReceiveItem {
  taskId: number;
  endpoint: string;
  /** The broker redelivered the copy: its first run may have started without any record, so it counts as attempt 2. */
  redelivered: boolean;
  maxAttempts: number;
}

export type ReceiveOutcome =
  /** Run the handler as attempt `attempt` (recorded). */
  | { action: 'run'; attempt: number }
  /** The response is already finished: do not run again. */
  | { action: 'finished' }
  /** The handler was started `maxAttempts` times without finishing; the response is now finished with errnr 125. */
  | { action: 'exhausted'; attempts: number }
  /** No such task. */
  | { action: 'unknown' }
  /** The task does not expect this endpoint. */
  | { action: 'refused' };

export type EventOutcome = 'stored' | 'duplicate' | 'unknown' | 'refused';

interface NewRow {
  task_id: number;
  endpoint: string;
  status: number;
  errnr: number;
  errmsg: string | null;
  payload: string | null;
  attempts: number;
  start_time: string;
}

/** A response row as this transaction sees it: read from the table, or inserted earlier in the same batch. */
interface Row {
  id: number | null;
  status: number;
  attempts: number;
  /** The pending insert this row is, for one inserted in this batch. */
  fresh: NewRow | null;
  /** The new values of an existing row that this batch changes. */
  change: { status: number; errnr: number; errmsg: string | null; payload: string | null; attempts: number } | null;
}

interface Delta {
  received: number;
  finished: number;
  failed: number;
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
const keyOf = (taskId: number, endpoint: string): string => `${taskId}\u0000${endpoint}`;

/** `CASE id WHEN ? THEN ? … END` for per-row values in one statement, with its parameters. */
function caseById<K>(values: Map<K, unknown>): [string, unknown[]] {
  const params: unknown[] = [];
  for (const [id, v] of values) params.push(id, v);
  return [`CASE id ${Array.from(values, () => 'WHEN ? THEN ?').join(' ')} END`, params];
}

/** Expected endpoint sets never change after a task is created: kept for the tasks seen lately. */
const EXPECTED_CACHE = 20_000;

/** The changes of one transaction, written with one statement per kind. */
class Changes {
  readonly rows = new Map<string, Row>();
  private readonly deltas = new Map<number, Delta>();

  constructor(readonly expected: Map<number, Set<string>>) {}

  private delta(taskId: number): Delta {
    let d = this.deltas.get(taskId);
    if (!d) this.deltas.set(taskId, d = { received: 0, finished: 0, failed: 0 });
    return d;
  }

  /** A new row: counts as received, and as finished when it is. */
  insert(row: NewRow): void {
    this.rows.set(keyOf(row.task_id, row.endpoint), { id: null, status: row.status, attempts: row.attempts, fresh: row, change: null });
    const d = this.delta(row.task_id);
    d.received++;
    if (row.status === 1) this.countFinished(d, row.errnr);
  }

  private countFinished(d: Delta, errnr: number): void {
    d.finished++;
    if (errnr !== 0) d.failed++;
  }

  /** Finishes a row that is not finished (read, or inserted in this batch). */
  finish(taskId: number, row: Row, result: { errnr: number; errmsg: string | null; payload: string | null; attempts: number }): void {
    row.status = 1;
    row.attempts = result.attempts;
    if (row.fresh) Object.assign(row.fresh, { status: 1, ...result });
    else row.change = { status: 1, ...result };
    this.countFinished(this.delta(taskId), result.errnr);
  }

  /** One more start of a handler for a row that is not finished. */
  countAttempt(row: Row): void {
    row.attempts++;
    if (row.fresh) row.fresh.attempts = row.attempts;
    else row.change = { status: 0, errnr: 0, errmsg: null, payload: null, ...row.change, attempts: row.attempts };
  }

  async write(em: EntityManager, now: Date): Promise<void> {
    const t = sqlTime(now);
    const rows = [...this.rows.values()];
    const inserts = rows.flatMap((r) => (r.fresh ? [r.fresh] : []));
    const updates = new Map(rows.flatMap((r) => (r.change && r.id !== null ? [[r.id, r.change] as const] : [])));
    if (inserts.length > 0) {
      await em.query(
        `INSERT INTO task_response (task_id, endpoint, status, errnr, errmsg, payload, attempts, start_time, last_modified_time)
         VALUES ${inserts.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        inserts.flatMap((r) => [r.task_id, r.endpoint, r.status, r.errnr, r.errmsg, r.payload, r.attempts, r.start_time, t]));
    }
    if (updates.size > 0) {
      const column = (get: (c: NonNullable<Row['change']>) => unknown) => caseById(new Map([...updates].map(([id, c]) => [id, get(c)])));
      const [status, statusP] = column((c) => c.status);
      const [errnr, errnrP] = column((c) => c.errnr);
      const [errmsg, errmsgP] = column((c) => c.errmsg);
      const [payload, payloadP] = column((c) => c.payload);
      const [attempts, attemptsP] = column((c) => c.attempts);
      await em.query(`UPDATE task_response SET status = ${status}, errnr = ${errnr}, errmsg = ${errmsg}, payload = ${payload},
        attempts = ${attempts}, last_modified_time = ? WHERE id IN (${marks(updates.size)})`,
      [...statusP, ...errnrP, ...errmsgP, ...payloadP, ...attemptsP, t, ...updates.keys()]);
    }
    const deltas = new Map([...this.deltas].filter(([, d]) => d.received + d.finished > 0));
    if (deltas.size === 0) return;
    const [add, addP] = caseById(new Map([...deltas].map(([id, d]) => [id, d.finished])));
    const [fail, failP] = caseById(new Map([...deltas].map(([id, d]) => [id, d.failed])));
    const [recv, recvP] = caseById(new Map([...deltas].map(([id, d]) => [id, d.received])));
    // Every expression reads the old row whatever the engine: MySQL applies SET left to right, so the
    // assignments that test `status` and `finished_count` come before the ones that change them.
    const complete = `status IN ('CREATED', 'SENT', 'INCOMPLETE') AND finished_count + ${add} >= expected_count`;
    await em.query(`UPDATE task SET
        end_time = CASE WHEN ${complete} THEN ? ELSE end_time END,
        status = CASE WHEN ${complete} THEN 'DONE' ELSE status END,
        failed_count = failed_count + ${fail},
        received_count = received_count + ${recv},
        finished_count = finished_count + ${add},
        last_modified_time = ?
      WHERE id IN (${marks(deltas.size)})`,
    [...addP, t, ...addP, ...failP, ...recvP, ...addP, t, ...deltas.keys()]);
  }
}

export class Completion {
  private readonly mysql: boolean;
  private readonly expectedCache = new Map<number, Set<string>>();

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /**
   * Locks the tasks of these pairs (ascending id) with the pairs' response rows, in one statement, and
   * returns what exists: every writer of a response locks its task first, so while these locks are held
   * nobody else can change those rows.
   */
  private async lock(em: EntityManager, pairs: { taskId: number; endpoint: string }[]): Promise<Changes> {
    const ids = [...new Set(pairs.map((p) => p.taskId))].sort((a, b) => a - b);
    const endpoints = [...new Set(pairs.map((p) => p.endpoint))];
    const rows: { task: number; id: number | null; endpoint: string | null; status: number | null; attempts: number | null }[] = await em.query(
      `SELECT t.id AS task, r.id, r.endpoint, r.status, r.attempts FROM task t
       LEFT JOIN task_response r ON r.task_id = t.id AND r.endpoint IN (${marks(endpoints.length)})
       WHERE t.id IN (${marks(ids.length)}) ORDER BY t.id${this.mysql ? ' FOR UPDATE' : ''}`, [...endpoints, ...ids]);
    const found = new Set(rows.map((r) => Number(r.task)));
    const changes = new Changes(await this.expected(em, [...found]));
    for (const r of rows) {
      if (r.id === null || r.endpoint === null) continue;
      changes.rows.set(keyOf(Number(r.task), r.endpoint), { id: Number(r.id), status: Number(r.status), attempts: Number(r.attempts), fresh: null, change: null });
    }
    return changes;
  }

  private async expected(em: EntityManager, ids: number[]): Promise<Map<number, Set<string>>> {
    const out = new Map<number, Set<string>>();
    const missing: number[] = [];
    for (const id of ids) {
      const known = this.expectedCache.get(id);
      if (known) out.set(id, known);
      else missing.push(id);
    }
    if (missing.length > 0) {
      const rows: { id: number; expected_endpoints: unknown }[] = await em.query(
        `SELECT id, expected_endpoints FROM task WHERE id IN (${marks(missing.length)})`, missing);
      for (const r of rows) {
        const set = new Set(readJson<string[]>(r.expected_endpoints));
        out.set(Number(r.id), set);
        this.expectedCache.set(Number(r.id), set);
        if (this.expectedCache.size > EXPECTED_CACHE) this.expectedCache.delete(this.expectedCache.keys().next().value as number);
      }
    }
    return out;
  }

  /**
   * Stores response events (receipts and results) within the caller's transaction; one outcome per
   * event, in order. A result finishes the response once: a repeat is a `duplicate` and changes nothing,
   * as does a receipt for a response that exists. An event for an endpoint the task does not expect is
   * `refused`, one for a task that does not exist `unknown`.
   */
  async applyEvents(em: EntityManager, events: ResponseEvent[], now: Date): Promise<EventOutcome[]> {
    if (events.length === 0) return [];
    const changes = await this.lock(em, events.map((e) => ({ taskId: e.task_id, endpoint: e.endpoint })));
    const outcomes = events.map((e): EventOutcome => {
      const expected = changes.expected.get(e.task_id);
      if (!expected) return 'unknown';
      if (!expected.has(e.endpoint)) return 'refused';
      const row = changes.rows.get(keyOf(e.task_id, e.endpoint));
      const start = sqlTime(new Date(e.start_time));
      if (e.kind === 'receipt') {
        if (row) return 'duplicate';
        changes.insert({ task_id: e.task_id, endpoint: e.endpoint, status: 0, errnr: 0, errmsg: null, payload: null, attempts: e.attempt, start_time: start });
        return 'stored';
      }
      const result = { errnr: e.errnr, errmsg: e.errmsg ?? null, payload: writeJson(e.payload) };
      if (!row) {
        changes.insert({ task_id: e.task_id, endpoint: e.endpoint, status: 1, ...result, attempts: e.attempt, start_time: start });
        return 'stored';
      }
      if (row.status === 1) return 'duplicate';
      changes.finish(e.task_id, row, { ...result, attempts: Math.max(row.attempts, e.attempt) });
      return 'stored';
    });
    await changes.write(em, now);
    return outcomes;
  }

  /**
   * Answers state requests (copies of tasks that may have run before) and records the new attempts, in
   * one transaction; one outcome per item, in order.
   */
  receiveMany(items: ReceiveItem[], now: Date): Promise<ReceiveOutcome[]> {
    return transaction(this.ds, async (em) => {
      const changes = await this.lock(em, items);
      const outcomes = items.map((item): ReceiveOutcome => {
        const expected = changes.expected.get(item.taskId);
        if (!expected) return { action: 'unknown' };
        if (!expected.has(item.endpoint)) return { action: 'refused' };
        const row = changes.rows.get(keyOf(item.taskId, item.endpoint));
        if (!row) {
          // Never exhausted without a recorded attempt: a redelivered message may not have started at all.
          const attempts = Math.min(item.redelivered ? 2 : 1, item.maxAttempts);
          changes.insert({ task_id: item.taskId, endpoint: item.endpoint, status: 0, errnr: 0, errmsg: null, payload: null, attempts, start_time: sqlTime(now) });
          return { action: 'run', attempt: attempts };
        }
        if (row.status === 1) return { action: 'finished' };
        if (row.attempts >= item.maxAttempts) {
          const attempts = row.attempts;
          changes.finish(item.taskId, row, {
            errnr: ERRNR_ATTEMPTS_EXHAUSTED, errmsg: `handler did not finish in ${attempts} attempts`, payload: null, attempts,
          });
          return { action: 'exhausted', attempts };
        }
        changes.countAttempt(row);
        return { action: 'run', attempt: row.attempts };
      });
      await changes.write(em, now);
      return outcomes;
    });
  }

  /**
   * INCOMPLETE: sent more than `timeout` ago and some expected endpoint has not received it. Decided
   * from the database alone, so any API instance may run it, any number of times.
   */
  async sweepIncomplete(now: Date, timeoutMs: number): Promise<number> {
    return transaction(this.ds, async (em) => {
      const runner = em.queryRunner;
      if (!runner) throw new Error('sweepIncomplete needs a transaction');
      const result = await runner.query(
        `UPDATE task SET status = 'INCOMPLETE', last_modified_time = ?
         WHERE status = 'SENT' AND sent_time < ? AND received_count < expected_count`,
        [sqlTime(now), sqlTime(new Date(now.getTime() - timeoutMs))], true) as { affected?: number };
      return result.affected ?? 0;
    });
  }
}
