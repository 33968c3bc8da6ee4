import { DataSource, EntityManager } from 'typeorm';
import type { Rollout, Task } from './rows';
import { ENDPOINT_STATE, EndpointState, EVENT, sqlEnter, sqlIn, sqlWord, TASK_STATUS, TaskStatus } from '../lifecycle/states';
import { clockOf } from './database-clock';
import { Dialect, dialectOf, exclusive, insertRows, isDuplicateKey, nowSql, transaction } from './database';
import type { Announce, History, NewEvent, StoredEvent } from './history';
import { readId, readJson, readOptionalTime, readTime, sqlTime, writeJson } from './sql-values';
import { ResponseRows } from './response-rows';

export interface NewTask {
  type: string;
  identifier: string;
  payload: unknown;
  endpoints: string[] | null;
  /** The label selector it was addressed with (then `endpoints` holds what it resolved to); null: none. */
  selector?: string | null;
  expected: string[];
  requestHash: string;
  /** Seconds it may run from its send. */
  timeout: number;
  /** Who created it (a token's name), for the history. */
  actor: string | null;
  /** A rolling send, resolved; null: to every expected endpoint at once. */
  rollout: Rollout | null;
  /** Where its end is POSTed (its own webhook); null: nowhere. */
  notify?: string | null;
  /** Stored without its response rows, which ResponseRows writes before its first send (a task for a large fleet). */
  deferRows?: boolean;
}

const TASK_COLUMN_NAMES = ['id', 'identifier', 'type', 'status', 'payload', 'endpoints', 'expected_endpoints', 'expected_count',
  'received_count', 'finished_count', 'failed_count', 'request_hash', 'start_time', 'sent_time', 'end_time', 'last_modified_time', 'rollout', 'timeout', 'deadline', 'selector', 'notify_url', 'rows_pending'];

/** The task columns that `hydrateTask` reads, with a table alias if given. */
export function taskColumns(alias?: string): string {
  return TASK_COLUMN_NAMES.map((c) => (alias ? `${alias}.${c}` : c)).join(', ');
}

const TASK_COLUMNS = taskColumns();

/** The rows a resend reaches: not heard from (a send the broker never confirmed) … */
const UNSENT: readonly EndpointState[] = [ENDPOINT_STATE.PENDING];
/** … or not finished (for a broker that lost its queues). */
const UNFINISHED: readonly EndpointState[] = [ENDPOINT_STATE.PENDING, ENDPOINT_STATE.RUNNING];

export function hydrateTask(row: Record<string, unknown>): Task {
  return {
    id: readId(row.id),
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
    rollout: readJson<Rollout | null>(row.rollout ?? null),
    timeout: Number(row.timeout),
    deadline: readOptionalTime(row.deadline),
    selector: row.selector === null || row.selector === undefined ? null : String(row.selector),
    notify: row.notify_url === null || row.notify_url === undefined ? null : String(row.notify_url),
    rows_pending: Number(row.rows_pending ?? 0) === 1,
  };
}

/** The endpoints a task is sent to first: every expected one, or a rollout's first batch. */
export function firstTargets(task: Pick<Task, 'expected_endpoints' | 'rollout'>): string[] {
  return task.rollout ? task.expected_endpoints.slice(0, task.rollout.batch_size) : task.expected_endpoints;
}

/** A send to do: the endpoints of one round of a task whose rows are waiting for it. */
export interface SendTargets {
  task: Task;
  round: number;
  endpoints: string[];
  /**
   * A rollout's send, recorded (rows `pending`, a `sent` event) by the transaction that decided it: its
   * confirm only stamps the rows' sent_time.
   */
  decided?: boolean;
}

/** What a claim's `send` did: the sends the broker confirmed, and the tasks some send of which failed. */
export interface SendOutcome {
  sent: (SendTargets & { at: Date })[];
  failed: number[];
}

/** The database's clock plus the milliseconds of the one parameter it takes (see `dbNowPlusParam`). */
function dbNowPlus(dialect: Dialect): string {
  return dialect === 'mysql' ? `${nowSql(dialect)} + INTERVAL ? MICROSECOND` : `strftime('%Y-%m-%d %H:%M:%f', 'now', ?)`;
}

function dbNowPlusParam(dialect: Dialect, ms: number): number | string {
  return dialect === 'mysql' ? Math.round(ms) * 1000 : `+${(ms / 1000).toFixed(3)} seconds`;
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

/**
 * How long the resend job leaves a task stored without its rows to the API that stored it (which sends such
 * tasks one at a time, renewing this for those waiting): should that API stop first, the resend job sends
 * it this long after its last renewal.
 */
const LARGE_SEND_LEASE_MS = 120_000;

/** Storage of tasks: creation (with a response row per expected endpoint, now or before its send), lookup, and sends. */
export class TaskStore {
  constructor(private readonly ds: DataSource, private readonly history: History, private readonly announce: Announce, readonly responseRows: ResponseRows) {}

  /**
   * Inserts tasks in one transaction, each with a pending response row per expected endpoint (unless
   * `deferRows`) and its `created` event; an identifier that exists already (or twice in the batch) gives the stored task
   * with `created: false`. One result per item, in order. The batch is inserted straight away; only when
   * an identifier turns out to exist are its items looked at one by one.
   */
  async createMany(items: NewTask[]): Promise<{ task: Task; created: boolean }[]> {
    const firsts = new Map<string, NewTask>();
    for (const item of items) if (!firsts.has(`${item.type}/${item.identifier}`)) firsts.set(`${item.type}/${item.identifier}`, item);
    let events: StoredEvent[] = [];
    let created: Map<string, Task>;
    try {
      created = await transaction(this.ds, async (em) => {
        const tasks = await this.insertTasks(em, [...firsts.values()]);
        await ResponseRows.insert(em, tasks.filter((t) => !t.rows_pending));
        events = await this.history.append(em, tasks.flatMap((task): NewEvent[] => {
          const created: NewEvent = {
            task, kind: EVENT.CREATED, time: task.start_time, detail: { expected: task.expected_count, broadcast: task.endpoints === null, ...(task.selector ? { selector: task.selector } : {}) },
            actor: firsts.get(`${task.type}/${task.identifier}`)?.actor ?? null,
          };
          if (!task.rollout) return [created];
          const first = firstTargets(task);
          created.detail = { ...created.detail, rollout: { batch_size: task.rollout.batch_size, max_errors: task.rollout.max_errors } };
          return [created, {
            task, kind: EVENT.SENT, time: task.start_time,
            detail: { round: 0, targets: first.length, endpoints: first, rollout: { running: first.length, remaining: task.expected_count - first.length } },
          }];
        }));
        return new Map(tasks.map((t) => [`${t.type}/${t.identifier}`, t]));
      });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // An identifier of the batch exists already (a retry of a POST, or another API instance's).
      return this.createOneByOne(items);
    }
    this.announce(events);
    return items.map((item) => {
      const key = `${item.type}/${item.identifier}`;
      return { task: created.get(key) as Task, created: firsts.get(key) === item };
    });
  }

  private async createOneByOne(items: NewTask[]): Promise<{ task: Task; created: boolean }[]> {
    const results: { task: Task; created: boolean }[] = [];
    for (const item of items) {
      const existing = await this.find(item.type, item.identifier);
      if (existing) {
        results.push({ task: existing, created: false });
        continue;
      }
      try {
        results.push(...await this.createMany([item]));
      } catch (err) {
        const raced = isDuplicateKey(err) ? await this.find(item.type, item.identifier) : null;
        if (!raced) throw err;
        results.push({ task: raced, created: false });
      }
    }
    return results;
  }

  /**
   * Inserts the task rows, created at the database's time (the deadline counts from it until the task is
   * sent); their ids follow from the first one where they are consecutive, else are read back.
   */
  private async insertTasks(em: EntityManager, items: NewTask[]): Promise<Task[]> {
    const now = await clockOf(this.ds).now(em);
    const deadline = (t: NewTask): Date => new Date(now.getTime() + t.timeout * 1000);
    const rows = items.map((t) => [
      t.identifier, t.type, TASK_STATUS.CREATED, writeJson(t.payload), writeJson(t.endpoints), writeJson(t.expected), t.expected.length,
      t.requestHash, sqlTime(now), sqlTime(now), t.rollout ? writeJson(t.rollout) : null, t.timeout, sqlTime(deadline(t)), t.selector ?? null, t.notify ?? null,
      t.deferRows ? 1 : 0, t.deferRows ? sqlTime(new Date(now.getTime() + LARGE_SEND_LEASE_MS)) : null]);
    const first = await insertRows(this.ds, em, `INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count,
      request_hash, start_time, last_modified_time, rollout, timeout, deadline, selector, notify_url, rows_pending, next_send_time) VALUES ${rows.map((r) => `(${marks(r.length)})`).join(', ')}`, rows.flat(), rows.length);
    if (first === null) {
      const stored: Task[] = [];
      for (const t of items) stored.push(...(await this.selectByIdentifiers(em, t.type, [t.identifier])).values());
      return stored;
    }
    return items.map((t, i): Task => ({
      id: first + i, identifier: t.identifier, type: t.type, status: TASK_STATUS.CREATED, payload: t.payload ?? null, endpoints: t.endpoints,
      expected_endpoints: t.expected, expected_count: t.expected.length, received_count: 0, finished_count: 0, failed_count: 0,
      request_hash: t.requestHash, start_time: now, sent_time: null, end_time: null, last_modified_time: now, rollout: t.rollout,
      timeout: t.timeout, deadline: deadline(t), selector: t.selector ?? null, notify: t.notify ?? null, rows_pending: t.deferRows === true,
    }));
  }

  private async selectByIdentifiers(em: EntityManager, type: string, identifiers: string[]): Promise<Map<string, Task>> {
    const rows: Record<string, unknown>[] = await em.query(
      `SELECT ${TASK_COLUMNS} FROM task WHERE type = ? AND identifier IN (${marks(identifiers.length)})`, [type, ...identifiers]);
    return new Map(rows.map((r) => [String(r.identifier), hydrateTask(r)]));
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

  /** Within the caller's transaction. */
  async findIn(em: EntityManager, id: number): Promise<Task | null> {
    const rows: Record<string, unknown>[] = await em.query(`SELECT ${TASK_COLUMNS} FROM task WHERE id = ?`, [id]);
    return rows.length ? hydrateTask(rows[0]) : null;
  }

  /**
   * Records the broker's confirm of sends, with a `sent` event each, in the caller's transaction. Only
   * CREATED becomes SENT: a task may already be DONE when a fast endpoint finished before the confirm arrived.
   * A resend is always recorded; a first send that an endpoint's answer recorded already is not again.
   */
  async recordSent(em: EntityManager, confirmed: (SendTargets & { at: Date })[], detail: Record<string, unknown> = {}): Promise<StoredEvent[]> {
    if (confirmed.length === 0) return [];
    const ids = [...new Set(confirmed.map((s) => s.task.id))].sort((a, b) => a - b);
    // The broker's confirm as the database's clock tells it (the publisher's `at` is its host's clock):
    // the task's deadline counts from it.
    const now = await clockOf(this.ds).now(em);
    const sends = confirmed.map((s) => ({ ...s, at: now }));
    // Locked, so that a send an endpoint's answer recorded already (Completion) is not recorded twice.
    const rows: { id: unknown; status: TaskStatus; sent_time: unknown }[] = await em.query(
      `SELECT id, status, sent_time FROM task WHERE id IN (${marks(ids.length)}) ORDER BY id${dialectOf(this.ds) === 'mysql' ? ' FOR UPDATE' : ''}`, ids);
    const created = new Set(rows.filter((r) => r.status === TASK_STATUS.CREATED).map((r) => readId(r.id)));
    // A first response recorded this send already (its `sent` event, by first response), before the confirm.
    const learnt = new Set(rows.filter((r) => r.status === TASK_STATUS.CREATED && r.sent_time !== null).map((r) => readId(r.id)));
    const recorded = sends.filter((s) => !s.decided && (created.has(s.task.id) && !learnt.has(s.task.id) || detail.resend !== undefined));
    await this.stampRollouts(em, sends);
    const at = new Map<number, string>();
    // A first send starts the run's time: the deadline is the send plus the task's timeout.
    const deadlines = new Map<number, string>();
    for (const s of sends) {
      if (!created.has(s.task.id) || at.has(s.task.id)) continue;
      at.set(s.task.id, sqlTime(now));
      deadlines.set(s.task.id, sqlTime(new Date(now.getTime() + s.task.timeout * 1000)));
    }
    if (at.size > 0) {
      const cases = (m: Map<number, string>): string => `CASE id ${[...m].map(() => 'WHEN ? THEN ?').join(' ')} END`;
      await em.query(
        `UPDATE task SET status = ${sqlEnter([TASK_STATUS.CREATED], TASK_STATUS.SENT, EVENT.SENT)},
         deadline = CASE WHEN sent_time IS NULL THEN ${cases(deadlines)} ELSE deadline END,
         sent_time = COALESCE(sent_time, ${cases(at)}), last_modified_time = ? WHERE id IN (${marks(at.size)})`,
        [...[...deadlines].flat(), ...[...at].flat(), sqlTime(now), ...at.keys()]);
    }
    return this.history.append(em, recorded.map((s): NewEvent => ({
      task: s.task, kind: EVENT.SENT, time: s.at,
      detail: { round: s.round, targets: s.endpoints.length, ...(s.task.rollout ? { endpoints: s.endpoints } : {}), ...detail },
    })));
  }

  /**
   * The confirmed sends of rollouts, stamped on their rows: that starts each endpoint's wait, and tells the
   * resend job that these reached the broker. Under the task's lock (recordSent's).
   */
  private async stampRollouts(em: EntityManager, sends: (SendTargets & { at: Date })[]): Promise<void> {
    for (const s of sends) {
      if (!s.task.rollout || s.endpoints.length === 0) continue;
      await em.query(`UPDATE task_response SET sent_time = ? WHERE task_id = ? AND round = ? AND sent_time IS NULL
        AND endpoint IN (${marks(s.endpoints.length)})`, [sqlTime(s.at), s.task.id, s.round, ...s.endpoints]);
    }
  }

  /**
   * Renews the hold of these tasks (stored without rows, waiting for their send in this process) on the
   * resend job: it leaves them alone for `ms` more, on the database's clock (0: the hold ends).
   */
  async holdSends(ids: readonly number[], ms = LARGE_SEND_LEASE_MS): Promise<void> {
    if (ids.length === 0) return;
    const dialect = dialectOf(this.ds);
    await exclusive(this.ds, () => this.ds.query(
      `UPDATE task SET next_send_time = ${dbNowPlus(dialect)} WHERE id IN (${marks(ids.length)}) AND status = ${sqlWord(TASK_STATUS.CREATED)} AND send_failures = 0`,
      [dbNowPlusParam(dialect, ms), ...ids]));
  }

  /** `recordSent` in a transaction of its own. */
  async markSent(sends: (SendTargets & { at: Date })[]): Promise<void> {
    if (sends.length === 0) return;
    this.announce(await transaction(this.ds, (em) => this.recordSent(em, sends)));
  }

  /**
   * The sends that tasks still need: for each task, per round, the endpoints whose rows are not finished
   * (`pending` only, for a send the broker never confirmed; `pending` and `running`, for a broker that
   * lost its queues), so that a resend reaches nobody who already answered.
   */
  private async targetsOf(em: EntityManager, tasks: Task[], states: readonly EndpointState[], unsentBefore: Date | null): Promise<SendTargets[]> {
    if (tasks.length === 0) return [];
    const rows: { task_id: unknown; endpoint: string; round: unknown; sent_time: unknown; last_modified_time: unknown }[] = await em.query(
      `SELECT task_id, endpoint, round, sent_time, last_modified_time FROM task_response WHERE task_id IN (${marks(tasks.length)})
       AND state IN ${sqlIn(states)} ORDER BY id`, tasks.map((t) => t.id));
    const byTask = new Map(tasks.map((t) => [t.id, t]));
    const groups = new Map<string, SendTargets>();
    for (const r of rows) {
      const task = byTask.get(readId(r.task_id)) as Task;
      // A rollout's rows are sent one batch at a time: only the decided sends the broker never confirmed.
      if (unsentBefore && task.rollout && (r.sent_time !== null || readTime(r.last_modified_time) >= unsentBefore)) continue;
      const round = Number(r.round);
      const key = `${task.id}/${round}`;
      let g = groups.get(key);
      if (!g) groups.set(key, g = { task, round, endpoints: [] });
      g.endpoints.push(r.endpoint);
    }
    return [...groups.values()];
  }

  /**
   * Claims a batch of tasks to send again, in id order after `afterId`, and hands their sends to `send`
   * inside the claiming transaction, which records what was confirmed. On MySQL the rows are locked with
   * SKIP LOCKED, so several API instances never pick the same task at once.
   * - `unsent`: CREATED (the broker never confirmed the last send) and untouched since before `before`, or a
   *   rollout with a batch decided before `before` that the broker never confirmed (the API died in between);
   *   and not waiting out a backoff: a task whose send failed is tried again only once `delayMs` of its
   *   failures in a row has passed on the database's clock (`next_send_time`);
   * - `unfinished`: some expected endpoint has not finished them (for a broker that keeps nothing across
   *   a restart).
   */
  async claim(
    selection: { kind: 'unsent'; before: Date } | { kind: 'unfinished' },
    afterId: number, limit: number,
    send: (sends: SendTargets[]) => Promise<SendOutcome>,
    delayMs: (failures: number) => number = () => 0,
  ): Promise<Task[]> {
    const dialect = dialectOf(this.ds);
    const lock = dialect === 'mysql' ? ' FOR UPDATE SKIP LOCKED' : '';
    const before = selection.kind === 'unsent' ? sqlTime(selection.before) : null;
    const [created, sent, pending] = [sqlWord(TASK_STATUS.CREATED), sqlWord(TASK_STATUS.SENT), sqlWord(ENDPOINT_STATE.PENDING)];
    const [where, params, states] = selection.kind === 'unsent'
      ? [`(status = ${created} AND last_modified_time < ? OR status = ${sent} AND rollout IS NOT NULL AND EXISTS (SELECT 1 FROM task_response r
          WHERE r.task_id = task.id AND r.state = ${pending} AND r.sent_time IS NULL AND r.last_modified_time < ?))
          AND (next_send_time IS NULL OR next_send_time <= ${nowSql(dialect)})`, [before, before], UNSENT]
      : [`status <> ${sqlWord(TASK_STATUS.CANCELLED)} AND finished_count < expected_count`, [], UNFINISHED];
    let events: StoredEvent[] = [];
    const claimed = await transaction(this.ds, async (em) => {
      const rows: Record<string, unknown>[] = await em.query(
        `SELECT ${TASK_COLUMNS}, send_failures FROM task WHERE ${where} AND id > ? ORDER BY id LIMIT ${Math.floor(limit)}${lock}`,
        [...params, afterId]);
      const tasks = rows.map(hydrateTask);
      // Stored without rows, and its first send never made (the process that stored it stopped first).
      await this.responseRows.writeIn(em, tasks.filter((t) => t.rows_pending).map((t) => t.id));
      const outcome = await send(await this.targetsOf(em, tasks, states, selection.kind === 'unsent' ? selection.before : null));
      events = await this.recordSent(em, outcome.sent, { resend: selection.kind });
      await this.recordSendOutcome(em, outcome, new Map(rows.map((r) => [readId(r.id), Number(r.send_failures)])), delayMs);
      return tasks;
    });
    this.announce(events);
    return claimed;
  }

  /**
   * A task some send of which failed waits `delayMs(failures in a row)` before the next try; one whose
   * sends all succeeded starts again from no failure.
   */
  private async recordSendOutcome(em: EntityManager, outcome: SendOutcome, failures: ReadonlyMap<number, number>,
    delayMs: (failures: number) => number): Promise<void> {
    const dialect = dialectOf(this.ds);
    const failed = new Set(outcome.failed);
    const byDelay = new Map<number, number[]>();
    for (const id of failed) {
      const delay = delayMs((failures.get(id) ?? 0) + 1);
      byDelay.set(delay, [...byDelay.get(delay) ?? [], id]);
    }
    for (const [delay, ids] of byDelay) {
      await em.query(`UPDATE task SET send_failures = send_failures + 1, next_send_time = ${dbNowPlus(dialect)} WHERE id IN (${marks(ids.length)})`,
        [dbNowPlusParam(dialect, delay), ...ids]);
    }
    const recovered = [...new Set(outcome.sent.map((s) => s.task.id))].filter((id) => !failed.has(id) && (failures.get(id) ?? 0) > 0);
    if (recovered.length > 0) {
      await em.query(`UPDATE task SET send_failures = 0, next_send_time = NULL WHERE id IN (${marks(recovered.length)})`, recovered);
    }
  }
}
