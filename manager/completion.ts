import type { DataSource, EntityManager } from 'typeorm';
import { dialectOf, exclusive, transaction } from './database';
import { sqlTime } from './sql-values';

/**
 * Completion without races: a task's counters are moved by UPDATE statements in the same transaction
 * that changes its response rows, with the task rows locked first, so concurrent endpoints are
 * serialised on each task and exactly one of them sees `finished_count + n >= expected_count`. Nothing
 * is read, decided in Node and written back without that lock. Both operations take a batch (see
 * Batcher): one transaction for many deliveries.
 */

export interface HandlerResult {
  payload: unknown;
  errnr: number;
  errmsg: string | null;
}

export interface ResponseKey {
  taskId: number;
  endpoint: string;
}

export interface ReceiveItem extends ResponseKey {
  /**
   * The attempt number to record when the endpoint has no response row yet: 2 for a redelivery whose
   * first run may have started without a record (see EndpointManager), otherwise 1.
   */
  firstAttempt: number;
  /**
   * The receipt of a handler already running unrecorded: creates the row if there is none and otherwise
   * changes nothing (a row there was made by another copy, whose attempt is counted already).
   */
  receiptOnly: boolean;
  /** When the handler started, for a receipt written while it runs; otherwise now. */
  startedAt?: Date;
}

export type ReceiveOutcome =
  /** Run the handler (attempt `attempt`). */
  | { action: 'run'; attempt: number }
  /** The response is already finished: a redelivery; do not run again. */
  | { action: 'finished' }
  /** The handler was started `max_attempts` times without finishing: finish it as failed. */
  | { action: 'exhausted'; attempts: number }
  /** No such task (a message from elsewhere, or from before a reset). */
  | { action: 'unknown' };

/** What the database says of a (task, endpoint) pair, read without locks or writes. */
export type ResponseState =
  /** No such task. */
  | 'unknown'
  /** The task exists and the endpoint has no response row: it never started (as far as anyone recorded). */
  | 'fresh'
  /** The endpoint has a response row that is not finished: started before, here or elsewhere. */
  | 'started'
  | 'finished';

export interface FinishItem extends ResponseKey {
  result: HandlerResult;
  /** `result.payload` as stored: serialised once, by whoever sizes the batch, not again here. */
  payloadJson: string | null;
  /** When the handler started: the start_time of a response row this finish creates. */
  startedAt: Date;
}

interface ResponseRow {
  id: number | null;
  task_id: number;
  endpoint: string;
  status: number;
  attempts: number;
}

/** Result of a modifying statement, the same shape on MySQL and SQLite. */
async function execute(em: EntityManager, sql: string, params: unknown[]): Promise<number> {
  const runner = em.queryRunner;
  if (!runner) throw new Error('execute() needs a transactional EntityManager');
  const result = await runner.query(sql, params, true) as { affected?: number };
  return result.affected ?? 0;
}

const addTo = (m: Map<number, number>, id: number, n: number): void => { m.set(id, (m.get(id) ?? 0) + n); };
const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
const keyOf = (taskId: number, endpoint: string): string => `${taskId}\u0000${endpoint}`;

/** `CASE id WHEN ? THEN ? … END` for per-row values in one statement, with its parameters. */
function caseById(values: Map<number, unknown>): [string, unknown[]] {
  const params: unknown[] = [];
  for (const [id, v] of values) params.push(id, v);
  return [`CASE id ${Array.from(values, () => 'WHEN ? THEN ?').join(' ')} END`, params];
}

export class Completion {
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /**
   * The tasks among the items' that exist and the items' response rows, in one statement. With `lock`,
   * the tasks are locked (ascending id: one lock order for every transaction, so no deadlocks): every
   * writer of a response locks its task first, so while these locks are held nobody else can change
   * those rows.
   */
  private async read(em: EntityManager, items: ResponseKey[], lock: boolean): Promise<{ tasks: Set<number>; responses: Map<string, ResponseRow> }> {
    const ids = [...new Set(items.map((i) => i.taskId))].sort((a, b) => a - b);
    const endpoints = [...new Set(items.map((i) => i.endpoint))];
    const forUpdate = lock && this.mysql ? ' FOR UPDATE' : '';
    const rows: { task: number; id: number | null; endpoint: string | null; status: number | null; attempts: number | null }[] = await em.query(
      `SELECT t.id AS task, r.id, r.endpoint, r.status, r.attempts FROM task t
       LEFT JOIN task_response r ON r.task_id = t.id AND r.endpoint IN (${marks(endpoints.length)})
       WHERE t.id IN (${marks(ids.length)}) ORDER BY t.id${forUpdate}`, [...endpoints, ...ids]);
    const tasks = new Set<number>();
    const responses = new Map<string, ResponseRow>();
    for (const r of rows) {
      const task = Number(r.task);
      tasks.add(task);
      if (r.id === null || r.endpoint === null) continue;
      responses.set(keyOf(task, r.endpoint), { id: Number(r.id), task_id: task, endpoint: r.endpoint, status: Number(r.status), attempts: Number(r.attempts) });
    }
    return { tasks, responses };
  }

  /**
   * Records that endpoints received tasks: a new response row (status 0) per first delivery, or for a
   * redelivery a decision from the existing row. One outcome per item, in order.
   */
  receiveMany(items: ReceiveItem[], now: Date, maxAttempts: number): Promise<ReceiveOutcome[]> {
    const t = sqlTime(now);
    return transaction(this.ds, async (em) => {
      const { tasks, responses } = await this.read(em, items, true);
      const inserts: { row: ResponseRow; startedAt: string }[] = [];
      const retried = new Set<number>();
      const received = new Map<number, number>();
      const outcomes = items.map((item): ReceiveOutcome => {
        if (!tasks.has(item.taskId)) return { action: 'unknown' };
        const key = keyOf(item.taskId, item.endpoint);
        const row = responses.get(key);
        if (!row) {
          // Never exhausted without a row of attempts: a redelivered message may not have started at all.
          const attempts = Math.min(item.firstAttempt, maxAttempts);
          const created: ResponseRow = { id: null, task_id: item.taskId, endpoint: item.endpoint, status: 0, attempts };
          responses.set(key, created);
          inserts.push({ row: created, startedAt: item.startedAt ? sqlTime(item.startedAt) : t });
          addTo(received, item.taskId, 1);
          return { action: 'run', attempt: attempts };
        }
        if (item.receiptOnly) return row.status === 1 ? { action: 'finished' } : { action: 'run', attempt: row.attempts };
        if (row.status === 1) return { action: 'finished' };
        if (row.attempts >= maxAttempts) return { action: 'exhausted', attempts: row.attempts };
        row.attempts++;
        if (row.id !== null) retried.add(row.id);
        return { action: 'run', attempt: row.attempts };
      });
      if (inserts.length > 0) {
        await em.query(
          `INSERT INTO task_response (task_id, endpoint, status, errnr, attempts, start_time, last_modified_time) VALUES
           ${inserts.map(() => '(?, ?, 0, 0, ?, ?, ?)').join(', ')}`,
          inserts.flatMap(({ row, startedAt }) => [row.task_id, row.endpoint, row.attempts, startedAt, t]));
        const [counts, params] = caseById(received);
        await em.query(`UPDATE task SET received_count = received_count + ${counts}, last_modified_time = ?
          WHERE id IN (${marks(received.size)})`, [...params, t, ...received.keys()]);
      }
      if (retried.size > 0) {
        await em.query(`UPDATE task_response SET attempts = attempts + 1, last_modified_time = ? WHERE id IN (${marks(retried.size)})`,
          [t, ...retried]);
      }
      return outcomes;
    });
  }

  /**
   * The state of each pair, from one plain read: no lock, no write, no transaction. It decides whether a
   * first delivery can run its handler before anything is written (EndpointManager's unrecorded start);
   * every write that follows still goes through the locked transactions below, which see the truth.
   */
  async lookupMany(items: ResponseKey[]): Promise<ResponseState[]> {
    const { tasks, responses } = await exclusive(this.ds, () => this.read(this.ds.manager, items, false));
    return items.map((i) => {
      if (!tasks.has(i.taskId)) return 'unknown';
      const row = responses.get(keyOf(i.taskId, i.endpoint));
      return row ? (row.status === 1 ? 'finished' : 'started') : 'fresh';
    });
  }

  /**
   * Finishes responses and counts them on their tasks, once each. A pair with no response row yet (a
   * handler that ran before its receipt was written) gets its row here, finished, and counts as received
   * too. An item whose response is already finished, or whose task is gone, changes nothing and gets false.
   */
  finishMany(items: FinishItem[], now: Date): Promise<boolean[]> {
    const t = sqlTime(now);
    return transaction(this.ds, async (em) => {
      const { tasks, responses } = await this.read(em, items, true);
      const done = new Map<number, FinishItem>();
      const inserts: FinishItem[] = [];
      const finished = new Map<number, number>();
      const failed = new Map<number, number>();
      const received = new Map<number, number>();
      const results = items.map((item) => {
        if (!tasks.has(item.taskId)) return false;
        const key = keyOf(item.taskId, item.endpoint);
        const row = responses.get(key);
        if (row && (row.status !== 0 || row.id === null)) return false;
        if (row) {
          row.status = 1;
          done.set(row.id as number, item);
          addTo(received, item.taskId, 0);
        } else {
          responses.set(key, { id: null, task_id: item.taskId, endpoint: item.endpoint, status: 1, attempts: 1 });
          inserts.push(item);
          addTo(received, item.taskId, 1);
        }
        addTo(finished, item.taskId, 1);
        addTo(failed, item.taskId, item.result.errnr === 0 ? 0 : 1);
        return true;
      });
      if (finished.size === 0) return results;
      if (done.size > 0) {
        const field = (get: (i: FinishItem) => unknown) => caseById(new Map([...done].map(([id, i]) => [id, get(i)])));
        const [errnr, errnrP] = field((i) => i.result.errnr);
        const [errmsg, errmsgP] = field((i) => i.result.errmsg);
        const [payload, payloadP] = field((i) => i.payloadJson);
        await em.query(`UPDATE task_response SET status = 1, errnr = ${errnr}, errmsg = ${errmsg}, payload = ${payload},
          last_modified_time = ? WHERE id IN (${marks(done.size)})`, [...errnrP, ...errmsgP, ...payloadP, t, ...done.keys()]);
      }
      if (inserts.length > 0) {
        await em.query(
          `INSERT INTO task_response (task_id, endpoint, status, errnr, errmsg, payload, attempts, start_time, last_modified_time) VALUES
           ${inserts.map(() => '(?, ?, 1, ?, ?, ?, 1, ?, ?)').join(', ')}`,
          inserts.flatMap((i) => [i.taskId, i.endpoint, i.result.errnr, i.result.errmsg, i.payloadJson, sqlTime(i.startedAt), t]));
      }
      // Every expression reads the old row whatever the engine: MySQL applies SET left to right, so the
      // assignments that test `status` and `finished_count` come before the ones that change them.
      const [add, addP] = caseById(finished);
      const [fail, failP] = caseById(failed);
      const [recv, recvP] = caseById(received);
      const complete = `status IN ('CREATED', 'SENT', 'INCOMPLETE') AND finished_count + ${add} >= expected_count`;
      await em.query(`UPDATE task SET
          end_time = CASE WHEN ${complete} THEN ? ELSE end_time END,
          status = CASE WHEN ${complete} THEN 'DONE' ELSE status END,
          failed_count = failed_count + ${fail},
          received_count = received_count + ${recv},
          finished_count = finished_count + ${add},
          last_modified_time = ?
        WHERE id IN (${marks(finished.size)})`,
      [...addP, t, ...addP, ...failP, ...recvP, ...addP, t, ...finished.keys()]);
      return results;
    });
  }

  /**
   * INCOMPLETE: sent more than `timeout` ago and some expected endpoint has not received it. Decided
   * from the database alone, so any API instance may run it, any number of times.
   */
  async sweepIncomplete(now: Date, timeoutMs: number): Promise<number> {
    return transaction(this.ds, (em) => execute(em,
      `UPDATE task SET status = 'INCOMPLETE', last_modified_time = ?
       WHERE status = 'SENT' AND sent_time < ? AND received_count < expected_count`,
      [sqlTime(now), sqlTime(new Date(now.getTime() - timeoutMs))]));
  }
}
