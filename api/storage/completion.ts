import type { DataSource, EntityManager } from 'typeorm';
import type { TaskDone } from '../metrics';
import type { ResponseEvent } from '../../protocol/wire';
import { ERRNR_ATTEMPTS_EXHAUSTED, ERRNR_DEADLINE_PASSED } from '../../protocol/wire';
import { clockOf } from './database-clock';
import { dialectOf, transaction } from './database';
import type { Rollout } from './rows';
import {
  allows, ENDPOINT_STATE, enter, EVENT, EndpointState as ResponseState, LIVE_STATUSES, RESPONSE_STATUS, sqlEnter, sqlIn, sqlWord, TASK_STATUS, TaskStatus,
} from '../lifecycle/states';
import type { Announce, EndpointChange, History, NewEvent, StoredEvent } from './history';
import { readId, readJson, readOptionalTime, readTime, sqlTime, writeJson } from './sql-values';
import type { ResponseRows } from './response-rows';

/**
 * Completion without races. Every writer of response rows (the collector storing events, the state
 * responder recording attempts, retries and cancels) first locks the rows of the tasks concerned, in
 * ascending id order (one lock order for every transaction, so several collectors never deadlock each
 * other), reads their counters and the rows it changes, and writes everything back in the same
 * transaction. So with any number of endpoints finishing at once, exactly one transaction sees the last
 * endpoint finish and makes the task DONE. Everything is done in batches: one transaction for many events.
 */

export interface ReceiveItem {
  taskId: number;
  endpoint: string;
  /** The broker redelivered the copy: its first run may have started without any record, so it counts as attempt 2. */
  redelivered: boolean;
  round: number;
  maxAttempts: number;
}

export type ReceiveOutcome =
  /** Run the handler as attempt `attempt` (recorded). */
  | { action: 'run'; attempt: number }
  /** Nothing to do for this copy: the response is finished, or the copy is of an earlier round. */
  | { action: 'finished' }
  /** The handler was started `maxAttempts` times without finishing; the response is now finished with errnr 125. */
  | { action: 'exhausted'; attempts: number }
  /** The task was cancelled before this endpoint started it. */
  | { action: 'cancelled' }
  /** No such task. */
  | { action: 'unknown' }
  /** The task does not expect this endpoint (or not this round). */
  | { action: 'refused' };

export type EventOutcome = 'stored' | 'duplicate' | 'unknown' | 'refused';

/** A task as a transaction holding its lock sees it. */
export interface LockedTask {
  id: number;
  type: string;
  identifier: string;
  status: TaskStatus;
  expected: number;
  received: number;
  finished: number;
  failed: number;
  /** Status, counters and sent_time as read, to tell what this transaction changed. */
  read: { status: TaskStatus; received: number; finished: number; failed: number; sentTime: Date | null; endTime: Date | null };
  endTime: Date | null;
  sentTime: Date | null;
  startTime: Date;
  /** A retry: the task's next send starts the wait for the endpoints afresh. */
  clearSentTime?: boolean;
  rollout: Rollout | null;
  /** Seconds the task may run from its send. */
  timeout: number;
  /** When its run's time is up (the database's clock); `readDeadline` as read, to tell whether it changed. */
  deadline: Date | null;
  readDeadline: Date | null;
}

/** A send a transaction decided for a rollout (its rows are `pending` now): to publish once it committed. */
export interface RolloutSend {
  taskId: number;
  round: number;
  endpoints: string[];
}

/** A response row as a transaction holding its task's lock sees it; `changed` once this transaction changes it. */
export interface LockedRow {
  id: number;
  taskId: number;
  endpoint: string;
  state: ResponseState;
  round: number;
  status: number | null;
  errnr: number;
  errmsg: string | null;
  payload: string | null;
  attempts: number;
  startTime: string | null;
  /** A rollout's row: when the broker confirmed its send. */
  sentTime: string | null;
  changed: boolean;
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
const QUEUED = sqlWord(ENDPOINT_STATE.QUEUED);
/** The statuses a task's execution deadline ends (and CREATED once a send of it is known). */
const DEADLINE_STATUSES: readonly TaskStatus[] = [TASK_STATUS.SENT, TASK_STATUS.INCOMPLETE];
/** The failure (errmsg) of a run its task's execution deadline ended. */
const DEADLINE_FAILURE = 'timed_out';

/**
 * A row the execution deadline failed while its endpoint ran it: shown failed (`timed_out`), but not
 * finished (status 0, not counted in finished_count), so that a result arriving later is still stored.
 */
export const timedOut = (row: Pick<LockedRow, 'state' | 'status' | 'errnr'>): boolean =>
  row.state === ENDPOINT_STATE.FAILED && row.status === RESPONSE_STATUS.RECEIVED && row.errnr === ERRNR_DEADLINE_PASSED;

export const keyOf = (taskId: number, endpoint: string): string => `${taskId}\u0000${endpoint}`;

/** `CASE id WHEN ? THEN ? … END` for per-row values in one statement, with its parameters. */
function caseById<K>(values: Map<K, unknown>): [string, unknown[]] {
  const params: unknown[] = [];
  for (const [id, v] of values) params.push(id, v);
  return [`CASE id ${Array.from(values, () => 'WHEN ? THEN ?').join(' ')} END`, params];
}

/**
 * The tasks and rows one transaction locked, the changes it makes to them, and the events that record
 * those changes; `write` stores it all with one statement per table.
 */
export class Locked {
  /** Changes that come before the endpoints' (a send learnt of from its first response). */
  private readonly leadEvents: NewEvent[] = [];
  /** The changes of endpoints, one event per task and kind. */
  private readonly endpointEvents = new Map<string, NewEvent>();
  private readonly taskEvents: NewEvent[] = [];
  /** The tasks this transaction makes DONE (known once `write` ran), for the end-to-end metric. */
  readonly done: TaskDone[] = [];
  /** The rollout sends this transaction decided, to publish after its commit. */
  readonly sends: RolloutSend[] = [];

  constructor(
    readonly tasks: Map<number, LockedTask>, readonly rows: Map<string, LockedRow>, private readonly now: Date, private readonly mysql: boolean,
  ) {}

  /** The database's time this transaction writes. */
  get time(): Date {
    return this.now;
  }

  row(taskId: number, endpoint: string): LockedRow | undefined {
    return this.rows.get(keyOf(taskId, endpoint));
  }

  rowsOf(taskId: number): LockedRow[] {
    return [...this.rows.entries()].filter(([k]) => k.startsWith(`${taskId}\u0000`)).map(([, r]) => r);
  }

  /** A change of the task itself. */
  record(task: LockedTask, event: Omit<NewEvent, 'task' | 'time' | 'endpoints'>): void {
    this.taskEvents.push({ time: this.now, ...event, task });
  }

  /** A change of one of the task's endpoints. */
  recordEndpoint(task: LockedTask, kind: typeof EVENT.RECEIVED | typeof EVENT.FINISHED | typeof EVENT.RETRIED | typeof EVENT.MISSING | typeof EVENT.TIMED_OUT | typeof EVENT.REMOVED,
    change: EndpointChange, actor: string | null = null): void {
    const key = `${task.id}/${kind}`;
    const event = this.endpointEvents.get(key);
    if (event) event.endpoints?.push(change);
    else this.endpointEvents.set(key, { task, kind, time: this.now, endpoints: [change], actor });
  }

  /**
   * An endpoint answered: the task was sent, whatever its status (a confirm that timed out, or was never
   * recorded, leaves it CREATED with no sent_time; a cancel may have come first), so its sent_time is set
   * if it has none: now, on the database's clock (the endpoint's start time is its own clock's, kept on
   * its row but deciding nothing); the deadline counts from it.
   * A task that is not a rollout stays CREATED until the broker confirms a send: one endpoint's answer
   * does not show that every endpoint's queue took its copy (a nacked publish, a queue whose node went
   * down mid-publish), and the resend job picks CREATED tasks, sending them to the endpoints that have
   * not answered. A rollout becomes SENT here: its rows record which of its sends were confirmed.
   */
  private sent(task: LockedTask, round: number): void {
    const first = task.sentTime === null;
    if (first) {
      task.sentTime = new Date(Math.max(task.startTime.getTime(), this.now.getTime()));
      task.deadline = new Date(task.sentTime.getTime() + task.timeout * 1000);
    }
    if (task.status !== TASK_STATUS.CREATED) return;
    if (task.rollout) {
      // Its history has the batch's `sent` event already, from the transaction that decided it.
      enter(task, TASK_STATUS.SENT);
      return;
    }
    // How many endpoints the send reached is the confirm's to say; the round is the responding row's.
    if (first) this.leadEvents.push({ task, kind: EVENT.SENT, time: task.sentTime as Date, detail: { by: 'first response', round } });
  }

  /** A row heard from for the first time (a receipt, or a state request that lets it run). */
  receive(task: LockedTask, row: LockedRow, attempt: number, startTime: string): void {
    this.sent(task, row.round);
    enter(row, ENDPOINT_STATE.RUNNING);
    Object.assign(row, { status: RESPONSE_STATUS.RECEIVED, attempts: attempt, startTime: row.startTime ?? startTime, changed: true });
    task.received++;
    this.recordEndpoint(task, EVENT.RECEIVED, { endpoint: row.endpoint, round: row.round, attempt });
  }

  /** A row finished (from pending, cancelled or running), with its result. */
  finish(task: LockedTask, row: LockedRow, r: { errnr: number; errmsg: string | null; payload: string | null; attempt: number; startTime: string }): void {
    this.sent(task, row.round);
    if (row.status === null) task.received++;
    task.finished++;
    if (r.errnr !== 0) task.failed++;
    enter(row, r.errnr === 0 ? ENDPOINT_STATE.SUCCEEDED : ENDPOINT_STATE.FAILED);
    Object.assign(row, {
      status: RESPONSE_STATUS.FINISHED, errnr: r.errnr, errmsg: r.errmsg, payload: r.payload,
      attempts: Math.max(row.attempts, r.attempt), startTime: row.startTime ?? r.startTime, changed: true,
    });
    this.recordEndpoint(task, EVENT.FINISHED, { endpoint: row.endpoint, round: row.round, attempt: row.attempts, errnr: r.errnr, errmsg: r.errmsg });
  }

  /** Makes DONE every task of this transaction whose expected endpoints have all finished. */
  private complete(): void {
    for (const t of this.tasks.values()) {
      if (allows(t.status, TASK_STATUS.DONE) && t.finished >= t.expected) {
        const kind = enter(t, TASK_STATUS.DONE);
        t.endTime = this.now;
        this.done.push({ type: t.type, startTime: t.startTime, endTime: this.now });
        this.record(t, { kind, detail: { succeeded: t.finished - t.failed, failed: t.failed } });
      }
    }
  }

  /**
   * A rollout's next step, decided from its rows as this transaction left them (the task's lock held):
   * past the error budget, the endpoints not sent yet are skipped; otherwise the free slots are given to
   * the next queued endpoints, in the order they were listed, whose rows become `pending` here, in the
   * transaction, and are published after the commit (the resend job sends those whose publish never got
   * confirmed). Once nothing is queued or in flight, a rollout that skipped endpoints is STOPPED, one with
   * missing endpoints INCOMPLETE; one whose endpoints all finished was made DONE already.
   */
  private async advance(em: EntityManager, task: LockedTask, rollout: Rollout): Promise<void> {
    if (!LIVE_STATUSES.includes(task.status)) return;
    const counted: { state: string; n: unknown }[] = await em.query(
      'SELECT state, COUNT(*) AS n FROM task_response WHERE task_id = ? GROUP BY state', [task.id]);
    const count = new Map(counted.map((c) => [c.state, Number(c.n)]));
    const n = (state: ResponseState): number => count.get(state) ?? 0;
    let queued = n(ENDPOINT_STATE.QUEUED);
    let skipped = n(ENDPOINT_STATE.SKIPPED);
    let inFlight = n(ENDPOINT_STATE.PENDING) + n(ENDPOINT_STATE.RUNNING);
    // A retry starts the budget afresh: the errors it left standing are not counted again.
    const errors = n(ENDPOINT_STATE.FAILED) + n(ENDPOINT_STATE.MISSING) - (rollout.errors_before ?? 0);
    const t = sqlTime(this.now);
    if (queued > 0 && rollout.max_errors !== null && errors > rollout.max_errors) {
      const rows: { endpoint: string }[] = await em.query(
        `SELECT endpoint FROM task_response WHERE task_id = ? AND state = ${QUEUED} ORDER BY id`, [task.id]);
      await em.query(`UPDATE task_response SET state = ${sqlEnter([ENDPOINT_STATE.QUEUED], ENDPOINT_STATE.SKIPPED, EVENT.SKIPPED)}, last_modified_time = ? WHERE task_id = ? AND state = ${QUEUED}`, [t, task.id]);
      this.record(task, { kind: EVENT.SKIPPED, detail: { errors, max_errors: rollout.max_errors, running: inFlight, endpoints: rows.map((r) => r.endpoint) } });
      skipped += queued;
      queued = 0;
    } else if (queued > 0 && inFlight < rollout.batch_size) {
      const rows: { id: unknown; endpoint: string; round: unknown }[] = await em.query(
        `SELECT id, endpoint, round FROM task_response WHERE task_id = ? AND state = ${QUEUED} ORDER BY id LIMIT ${Math.floor(rollout.batch_size - inFlight)}`,
        [task.id]);
      await em.query(`UPDATE task_response SET state = ${sqlEnter([ENDPOINT_STATE.QUEUED], ENDPOINT_STATE.PENDING, EVENT.SENT)}, sent_time = NULL, last_modified_time = ? WHERE id IN (${marks(rows.length)})`,
        [t, ...rows.map((r) => readId(r.id))]);
      inFlight += rows.length;
      queued -= rows.length;
      const byRound = new Map<number, string[]>();
      for (const r of rows) byRound.set(Number(r.round), [...byRound.get(Number(r.round)) ?? [], r.endpoint]);
      for (const [round, endpoints] of byRound) {
        this.sends.push({ taskId: task.id, round, endpoints });
        this.record(task, { kind: EVENT.SENT, detail: { round, targets: endpoints.length, endpoints, rollout: { running: inFlight, remaining: queued, errors } } });
      }
    }
    if (queued > 0 || inFlight > 0) return;
    if (skipped > 0) {
      const kind = enter(task, TASK_STATUS.STOPPED);
      task.endTime = this.now;
      const [succeeded, failed, missing] = [n(ENDPOINT_STATE.SUCCEEDED), n(ENDPOINT_STATE.FAILED), n(ENDPOINT_STATE.MISSING)];
      this.record(task, { kind, detail: { succeeded, failed, missing, skipped, errors } });
    } else if (n(ENDPOINT_STATE.MISSING) > 0) {
      const kind = enter(task, TASK_STATUS.INCOMPLETE);
      this.record(task, { kind, detail: { missing: n(ENDPOINT_STATE.MISSING) } });
    }
  }

  async write(em: EntityManager, history: History): Promise<StoredEvent[]> {
    this.complete();
    const t = sqlTime(this.now);
    const rows = new Map([...this.rows.values()].filter((r) => r.changed).map((r) => [r.id, r]));
    if (rows.size > 0) {
      // Rows that exist (and are locked), updated by primary key with one multi-row upsert: a CASE per
      // column would cost each row a scan of every other row's value.
      const changed = ['state', 'round', 'status', 'errnr', 'errmsg', 'payload', 'attempts', 'start_time', 'sent_time', 'last_modified_time'];
      const upsert = this.mysql
        ? `ON DUPLICATE KEY UPDATE ${changed.map((c) => `${c} = VALUES(${c})`).join(', ')}`
        : `ON CONFLICT (id) DO UPDATE SET ${changed.map((c) => `${c} = excluded.${c}`).join(', ')}`;
      const values = [...rows.values()].map((r) => [r.id, r.taskId, r.endpoint, r.state, r.round, r.status, r.errnr, r.errmsg, r.payload, r.attempts, r.startTime, r.sentTime, t]);
      await em.query(`INSERT INTO task_response (id, task_id, endpoint, ${changed.join(', ')})
        VALUES ${values.map((v) => `(${marks(v.length)})`).join(', ')} ${upsert}`, values.flat());
    }
    // After the rows are written: a rollout decides from them as they now are.
    for (const task of this.tasks.values()) if (task.rollout) await this.advance(em, task, task.rollout);
    const learntSent = (x: LockedTask): boolean => x.read.sentTime === null && x.sentTime !== null && !x.clearSentTime;
    const newDeadline = (x: LockedTask): boolean => x.deadline?.getTime() !== x.readDeadline?.getTime()
      || x.endTime?.getTime() !== x.read.endTime?.getTime();
    const tasks = [...this.tasks.values()].filter((x) => x.status !== x.read.status || x.received !== x.read.received
      || x.finished !== x.read.finished || x.failed !== x.read.failed || x.clearSentTime || learntSent(x) || newDeadline(x));
    const sentNow = tasks.filter(learntSent);
    if (tasks.length > 0) {
      const column = (get: (x: LockedTask) => unknown) => caseById(new Map(tasks.map((x) => [x.id, get(x)])));
      const sets = [
        column((x) => x.status), column((x) => x.received), column((x) => x.finished), column((x) => x.failed),
        column((x) => (x.endTime ? sqlTime(x.endTime) : null)), column((x) => (x.deadline ? sqlTime(x.deadline) : null)),
      ];
      const names = ['status', 'received_count', 'finished_count', 'failed_count', 'end_time', 'deadline'];
      const clear = tasks.filter((x) => x.clearSentTime).map((x) => x.id);
      const [sentCase, sentParams] = caseById(new Map(sentNow.map((x) => [x.id, sqlTime(x.sentTime as Date)])));
      const sentTime = clear.length === 0 && sentNow.length === 0 ? ''
        : `, sent_time = CASE${clear.length ? ` WHEN id IN (${marks(clear.length)}) THEN NULL` : ''}${sentNow.length ? ` WHEN id IN (${marks(sentNow.length)}) THEN COALESCE(sent_time, ${sentCase})` : ''} ELSE sent_time END`;
      await em.query(`UPDATE task SET ${names.map((n, i) => `${n} = ${sets[i][0]}`).join(', ')}${sentTime}, last_modified_time = ?
        WHERE id IN (${marks(tasks.length)})`, [...sets.flatMap(([, p]) => p), ...clear, ...sentNow.map((x) => x.id), ...(sentNow.length ? sentParams : []), t, ...tasks.map((x) => x.id)]);
    }
    return history.append(em, [...this.leadEvents, ...this.endpointEvents.values(), ...this.taskEvents]);
  }
}

/** A task the deadline ended while some of its endpoints ran it: they are told to abort, as by a cancel. */
export interface DeadlineAbort {
  taskId: number;
  /** The round each running endpoint runs. */
  rounds: Record<string, number>;
}

/** Told of the tasks that became DONE, once their transaction committed. */
export type OnDone = (done: readonly TaskDone[]) => void;

/** A (task, endpoint) pair: one response row. */
export interface RowKey {
  taskId: number;
  endpoint: string;
}

/** The rows read with locked tasks: all of theirs (null), those of these endpoints, or exactly these pairs'. */
type RowSelection = null | { endpoints: string[] } | { pairs: readonly RowKey[] };

const TASK_COLUMNS = `t.id AS task, t.type, t.identifier, t.status AS task_status, t.expected_count, t.received_count, t.finished_count,
  t.failed_count, t.end_time, t.sent_time, t.start_time AS task_start_time, t.rollout, t.timeout, t.deadline, t.rows_pending`;
const ROW_COLUMNS = 'r.id, r.endpoint, r.state, r.round, r.status, r.errnr, r.errmsg, r.payload, r.attempts, r.start_time, r.sent_time AS row_sent_time';

function readLockedTask(id: number, r: Record<string, unknown>): LockedTask {
  const counts = { status: r.task_status as TaskStatus, received: Number(r.received_count), finished: Number(r.finished_count), failed: Number(r.failed_count) };
  const sentTime = readOptionalTime(r.sent_time);
  const endTime = readOptionalTime(r.end_time);
  return {
    id, type: String(r.type), identifier: String(r.identifier), expected: Number(r.expected_count), ...counts, read: { ...counts, sentTime, endTime },
    endTime, sentTime, startTime: readTime(r.task_start_time),
    rollout: readJson<Rollout | null>(r.rollout ?? null),
    timeout: Number(r.timeout), deadline: readOptionalTime(r.deadline), readDeadline: readOptionalTime(r.deadline),
  };
}

function readLockedRow(taskId: number, r: Record<string, unknown>): LockedRow {
  return {
    id: readId(r.id), taskId, endpoint: String(r.endpoint), state: r.state as ResponseState, round: Number(r.round),
    status: r.status === null ? null : Number(r.status), errnr: Number(r.errnr), errmsg: r.errmsg === null ? null : String(r.errmsg),
    payload: r.payload === null ? null : String(r.payload), attempts: Number(r.attempts),
    startTime: r.start_time === null ? null : sqlTime(readTime(r.start_time)),
    sentTime: r.row_sent_time === null || r.row_sent_time === undefined ? null : sqlTime(readTime(r.row_sent_time)),
    changed: false,
  };
}

export class Completion {
  private readonly mysql: boolean;
  /** Publishes the sends rollouts decided, after their transaction committed (set by the server). */
  dispatch: (sends: RolloutSend[]) => void = () => undefined;

  constructor(
    private readonly ds: DataSource, private readonly history: History, private readonly announce: Announce, private readonly responseRows: ResponseRows,
    private readonly onDone: OnDone = () => undefined,
  ) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /**
   * Locks these tasks (ascending id) and reads them with the rows of these endpoints (all rows when
   * `endpoints` is null), in one statement. A task stored without its rows gets them first (ResponseRows).
   */
  lock(em: EntityManager, taskIds: number[], endpoints: string[] | null, now: Date): Promise<Locked> {
    return this.lockRows(em, taskIds, endpoints === null ? null : { endpoints }, now);
  }

  /**
   * Locks the tasks of these (task, endpoint) pairs and reads each pair's row only: a batch of events of
   * a few broadcasts to a large fleet names as many endpoints as events, and every task has a row for
   * each, so reading every task's rows of every named endpoint would read tasks × endpoints rows.
   */
  lockPairs(em: EntityManager, pairs: readonly RowKey[], now: Date): Promise<Locked> {
    return this.lockRows(em, pairs.map((p) => p.taskId), { pairs }, now);
  }

  private async lockRows(em: EntityManager, taskIds: number[], which: RowSelection, now: Date): Promise<Locked> {
    const locked = await this.lockAndRead(em, taskIds, which, now);
    if (locked.rowsPending.length === 0) return locked;
    await this.responseRows.writeIn(em, locked.rowsPending);
    return this.lockAndRead(em, taskIds, which, now);
  }

  private async lockAndRead(em: EntityManager, taskIds: number[], which: RowSelection, now: Date): Promise<Locked & { rowsPending: number[] }> {
    const ids = [...new Set(taskIds)].sort((a, b) => a - b);
    const forUpdate = this.mysql ? ' FOR UPDATE' : '';
    let taskRows: Record<string, unknown>[];
    let responseRows: Record<string, unknown>[];
    if (which !== null && 'pairs' in which) {
      // The tasks first (their locks are what every writer takes, in id order), then exactly the pairs'
      // rows: one range per task on the (task_id, endpoint) unique index.
      taskRows = await em.query(`SELECT ${TASK_COLUMNS} FROM task t WHERE t.id IN (${marks(ids.length)}) ORDER BY t.id${forUpdate}`, ids);
      const byTask = new Map<number, Set<string>>();
      for (const p of which.pairs) {
        const set = byTask.get(p.taskId) ?? new Set<string>();
        set.add(p.endpoint);
        byTask.set(p.taskId, set);
      }
      const found = new Set(taskRows.map((t) => readId(t.task)));
      const groups = [...byTask].filter(([id]) => found.has(id));
      responseRows = groups.length === 0 ? [] : await em.query(
        `SELECT r.task_id AS task, ${ROW_COLUMNS} FROM task_response r
         WHERE ${groups.map(([, eps]) => `(r.task_id = ? AND r.endpoint IN (${marks(eps.size)}))`).join(' OR ')}${forUpdate}`,
        groups.flatMap(([id, eps]) => [id, ...eps]));
    } else {
      const eps = which === null ? null : [...new Set(which.endpoints)];
      taskRows = await em.query(
        `SELECT ${TASK_COLUMNS}, ${ROW_COLUMNS}
         FROM task t LEFT JOIN task_response r ON r.task_id = t.id${eps === null ? '' : ` AND r.endpoint IN (${marks(eps.length)})`}
         WHERE t.id IN (${marks(ids.length)}) ORDER BY t.id${forUpdate}`, [...eps ?? [], ...ids]);
      responseRows = taskRows;
    }
    const tasks = new Map<number, LockedTask>();
    const rowsPending: number[] = [];
    for (const r of taskRows) {
      const id = readId(r.task);
      if (tasks.has(id)) continue;
      if (Number(r.rows_pending) === 1) rowsPending.push(id);
      tasks.set(id, readLockedTask(id, r));
    }
    const locked = new Map<string, LockedRow>();
    for (const r of responseRows) {
      if (r.id === null || r.endpoint === null) continue;
      const row = readLockedRow(readId(r.task), r);
      locked.set(keyOf(row.taskId, row.endpoint), row);
    }
    return Object.assign(new Locked(tasks, locked, now, this.mysql), { rowsPending });
  }

  /**
   * Stores response events (receipts and results) within the caller's transaction; one outcome per
   * event, in order, and the history events to announce after the commit. A result finishes the response
   * once: a repeat is a `duplicate` and changes nothing, as does a receipt for a response heard from
   * already, or an event of an earlier round. An event for an endpoint the task does not expect is
   * `refused`, one for a task that does not exist `unknown`. What a cancelled endpoint reports is kept.
   * `done`: the tasks made DONE, for the caller to report once it committed.
   */
  async applyEvents(em: EntityManager, events: ResponseEvent[], now: Date): Promise<{ outcomes: EventOutcome[]; history: StoredEvent[]; done: TaskDone[]; sends: RolloutSend[] }> {
    if (events.length === 0) return { outcomes: [], history: [], done: [], sends: [] };
    const locked = await this.lockPairs(em, events.map((e) => ({ taskId: e.task_id, endpoint: e.endpoint })), now);
    const outcomes = events.map((e): EventOutcome => {
      const task = locked.tasks.get(e.task_id);
      if (!task) return 'unknown';
      const row = locked.row(e.task_id, e.endpoint);
      const round = e.round ?? 0;
      if (!row || round > row.round) return 'refused';
      if (round < row.round) return 'duplicate';
      // Nobody was sent these (a rollout's endpoints not sent yet, or never).
      if (row.state === ENDPOINT_STATE.QUEUED || row.state === ENDPOINT_STATE.SKIPPED) return 'refused';
      const start = sqlTime(new Date(e.start_time));
      if (e.kind === 'receipt') {
        if (row.status !== null) return 'duplicate';
        locked.receive(task, row, e.attempt, start);
        return 'stored';
      }
      if (row.status === RESPONSE_STATUS.FINISHED) return 'duplicate';
      // A timed-out run's result comes late but is kept (and may make the task DONE), unless the run was
      // aborted: that is the deadline's own doing, already recorded as timed_out.
      if (timedOut(row) && e.aborted === true) return 'duplicate';
      locked.finish(task, row, { errnr: e.errnr, errmsg: e.errmsg ?? null, payload: writeJson(e.payload), attempt: e.attempt, startTime: start });
      return 'stored';
    });
    const history = await locked.write(em, this.history);
    return { outcomes, history, done: locked.done, sends: locked.sends };
  }

  /**
   * Answers state requests (copies of tasks that may have run before) and records the new attempts, in
   * one transaction; one outcome per item, in order.
   */
  async receiveMany(items: ReceiveItem[]): Promise<ReceiveOutcome[]> {
    let history: StoredEvent[] = [];
    let done: TaskDone[] = [];
    let sends: RolloutSend[] = [];
    const outcomes = await transaction(this.ds, async (em) => {
      const now = await clockOf(this.ds).now(em);
      const locked = await this.lockPairs(em, items.map((i) => ({ taskId: i.taskId, endpoint: i.endpoint })), now);
      const out = items.map((item): ReceiveOutcome => {
        const task = locked.tasks.get(item.taskId);
        if (!task) return { action: 'unknown' };
        const row = locked.row(item.taskId, item.endpoint);
        if (!row || item.round > row.round) return { action: 'refused' };
        if (item.round < row.round || row.status === RESPONSE_STATUS.FINISHED) return { action: 'finished' };
        // The deadline ended it: a copy delivered again (the endpoint restarted) is not run any more.
        if (row.state === ENDPOINT_STATE.CANCELLED || row.state === ENDPOINT_STATE.SKIPPED || timedOut(row)) return { action: 'cancelled' };
        if (row.state === ENDPOINT_STATE.QUEUED) return { action: 'refused' };
        if (row.status === null) {
          // Never exhausted without a recorded attempt: a redelivered message may not have started at all.
          const attempt = Math.min(item.redelivered ? 2 : 1, item.maxAttempts);
          locked.receive(task, row, attempt, sqlTime(now));
          return { action: 'run', attempt };
        }
        if (row.attempts >= item.maxAttempts) {
          const attempts = row.attempts;
          locked.finish(task, row, {
            errnr: ERRNR_ATTEMPTS_EXHAUSTED, errmsg: `handler did not finish in ${attempts} attempts`, payload: null, attempt: attempts, startTime: sqlTime(now),
          });
          return { action: 'exhausted', attempts };
        }
        row.attempts++;
        row.changed = true;
        return { action: 'run', attempt: row.attempts };
      });
      history = await locked.write(em, this.history);
      done = locked.done;
      sends = locked.sends;
      return out;
    });
    this.announce(history);
    this.onDone(done);
    this.dispatch(sends);
    return outcomes;
  }

  /**
   * A rollout's endpoints not heard from within `timeout` of the broker's confirm of their send become
   * `missing`: each frees its slot and counts as an error, and the rollout goes on (or stops) from there.
   * Like the INCOMPLETE sweep, decided from the database alone, safe with several instances.
   */
  async sweepRollouts(now: Date, timeoutMs: number, batch = 100): Promise<number> {
    const cutoff = sqlTime(new Date(now.getTime() - timeoutMs));
    let total = 0;
    for (;;) {
      let history: StoredEvent[] = [];
      let sends: RolloutSend[] = [];
      const swept = await transaction(this.ds, async (em) => {
        const rows: { id: unknown }[] = await em.query(
          `SELECT id FROM task WHERE rollout IS NOT NULL AND status = ${sqlWord(TASK_STATUS.SENT)} AND EXISTS (SELECT 1 FROM task_response r
             WHERE r.task_id = task.id AND r.state = ${sqlWord(ENDPOINT_STATE.PENDING)} AND r.sent_time < ?) ORDER BY id LIMIT ${batch}${this.mysql ? ' FOR UPDATE SKIP LOCKED' : ''}`,
          [cutoff]);
        if (rows.length === 0) return 0;
        const locked = await this.lock(em, rows.map((r) => readId(r.id)), null, now);
        for (const row of locked.rows.values()) {
          const task = locked.tasks.get(row.taskId) as LockedTask;
          if (row.state !== ENDPOINT_STATE.PENDING || row.sentTime === null || row.sentTime >= cutoff || task.status !== TASK_STATUS.SENT) continue;
          locked.recordEndpoint(task, enter(row, ENDPOINT_STATE.MISSING) as typeof EVENT.MISSING, { endpoint: row.endpoint, round: row.round });
          row.changed = true;
        }
        history = await locked.write(em, this.history);
        sends = locked.sends;
        return rows.length;
      });
      this.announce(history);
      this.dispatch(sends);
      total += swept;
      if (swept < batch) return total;
    }
  }

  /**
   * The execution deadline: every task not ended whose `deadline` (the database's clock) is before `now`
   * and that was sent (CREATED with a send learnt of, SENT, or INCOMPLETE for want of a receipt) ends:
   * its endpoints still pending become `missing`, those running `failed` with errnr 127 (`timed_out`, not
   * counted as finished, so that a result arriving later is still stored), a rollout's queued ones
   * `skipped`; the task becomes INCOMPLETE with an end time, recorded as `timed_out` (the endpoints) and
   * `incomplete` (the task). Answers how many tasks it ended, and the running endpoints to tell to abort
   * once committed. Like the
   * other sweeps, decided from the database alone, so any instance may run it. The candidates are read
   * without a lock, then locked in id order (every writer's order) and judged again: with SKIP LOCKED they
   * would be passed over whenever another job's scan held them at that instant (the sweeps fire together),
   * and a task end seconds late; a second instance waits for the first and finds them ended.
   */
  async sweepDeadlines(now: Date, batch = 500): Promise<{ ended: number; aborts: DeadlineAbort[] }> {
    const aborts: DeadlineAbort[] = [];
    let ended = 0;
    for (;;) {
      let history: StoredEvent[] = [];
      const found = await transaction(this.ds, async (em) => {
        const rows: { id: unknown }[] = await em.query(
          `SELECT id FROM task WHERE end_time IS NULL AND deadline < ?
             AND (status IN ${sqlIn(DEADLINE_STATUSES)} OR status = ${sqlWord(TASK_STATUS.CREATED)} AND sent_time IS NOT NULL)
           ORDER BY deadline LIMIT ${batch}`, [sqlTime(now)]);
        if (rows.length === 0) return 0;
        const locked = await this.lock(em, rows.map((r) => readId(r.id)), null, now);
        for (const task of locked.tasks.values()) {
          const expired = this.expire(locked, task, now);
          if (!expired) continue;
          ended++;
          if (Object.keys(expired.rounds).length > 0) aborts.push(expired);
        }
        history = await locked.write(em, this.history);
        return rows.length;
      });
      this.announce(history);
      if (found < batch) return { ended, aborts };
    }
  }

  /** Ends one task whose deadline passed (see `sweepDeadlines`); answers its running endpoints, null if it had ended. */
  private expire(locked: Locked, task: LockedTask, now: Date): DeadlineAbort | null {
    // As the lock shows it: another instance, a late result or a retry may have come first.
    if (task.endTime !== null || task.deadline === null || task.deadline >= now) return null;
    if (!DEADLINE_STATUSES.includes(task.status) && !(task.status === TASK_STATUS.CREATED && task.sentTime !== null)) return null;
    const rows = locked.rowsOf(task.id);
    const rounds: Record<string, number> = {};
    let missing = 0;
    let newlyMissing = 0;
    let skipped = 0;
    for (const row of rows) {
      if (row.state === ENDPOINT_STATE.PENDING) {
        const kind = enter(row, ENDPOINT_STATE.MISSING, EVENT.MISSING) as typeof EVENT.MISSING;
        row.changed = true;
        locked.recordEndpoint(task, kind, { endpoint: row.endpoint, round: row.round });
        missing++;
        newlyMissing++;
      } else if (row.state === ENDPOINT_STATE.RUNNING) {
        const kind = enter(row, ENDPOINT_STATE.FAILED, EVENT.TIMED_OUT) as typeof EVENT.TIMED_OUT;
        Object.assign(row, { errnr: ERRNR_DEADLINE_PASSED, errmsg: DEADLINE_FAILURE, changed: true });
        locked.recordEndpoint(task, kind, { endpoint: row.endpoint, round: row.round, attempt: row.attempts, errnr: ERRNR_DEADLINE_PASSED, errmsg: DEADLINE_FAILURE });
        rounds[row.endpoint] = row.round;
      } else if (row.state === ENDPOINT_STATE.QUEUED) {
        enter(row, ENDPOINT_STATE.SKIPPED, EVENT.SKIPPED);
        row.changed = true;
        skipped++;
      } else if (row.state === ENDPOINT_STATE.MISSING) {
        missing++;
      }
    }
    const timedOutCount = Object.keys(rounds).length;
    const wasIncomplete = task.status === TASK_STATUS.INCOMPLETE;
    const ended = wasIncomplete && newlyMissing === 0 && timedOutCount === 0 && skipped === 0;
    if (!wasIncomplete) enter(task, TASK_STATUS.INCOMPLETE, EVENT.INCOMPLETE);
    task.endTime = locked.time;
    // INCOMPLETE already (a rollout with missing endpoints), with nothing left to end: only its end time is new.
    if (ended) return { taskId: task.id, rounds };
    locked.record(task, {
      kind: EVENT.INCOMPLETE,
      detail: { missing, timed_out: timedOutCount, ...(skipped > 0 ? { skipped } : {}), reason: 'deadline', timeout: task.timeout },
    });
    return { taskId: task.id, rounds };
  }

  /**
   * INCOMPLETE: sent more than `timeout` ago and some expected endpoint has not been heard from. Decided
   * from the database alone, so any API instance may run it, any number of times; with SKIP LOCKED two
   * instances never hold the same task.
   */
  async sweepIncomplete(now: Date, timeoutMs: number, batch = 1000): Promise<number> {
    let total = 0;
    for (;;) {
      let history: StoredEvent[] = [];
      const marked = await transaction(this.ds, async (em) => {
        const rows: Record<string, unknown>[] = await em.query(
          `SELECT id, type, identifier, expected_count, received_count FROM task
           WHERE status = ${sqlWord(TASK_STATUS.SENT)} AND sent_time < ? AND received_count < expected_count AND rollout IS NULL ORDER BY id LIMIT ${batch}${this.mysql ? ' FOR UPDATE SKIP LOCKED' : ''}`,
          [sqlTime(new Date(now.getTime() - timeoutMs))]);
        if (rows.length === 0) return 0;
        const ids = rows.map((r) => readId(r.id));
        const incomplete = sqlEnter([TASK_STATUS.SENT], TASK_STATUS.INCOMPLETE, EVENT.INCOMPLETE);
        await em.query(`UPDATE task SET status = ${incomplete}, last_modified_time = ? WHERE id IN (${marks(ids.length)})`, [sqlTime(now), ...ids]);
        history = await this.history.append(em, rows.map((r): NewEvent => ({
          task: { id: readId(r.id), type: String(r.type), identifier: String(r.identifier) }, kind: EVENT.INCOMPLETE, time: now,
          detail: { missing: Number(r.expected_count) - Number(r.received_count) },
        })));
        return ids.length;
      });
      this.announce(history);
      total += marked;
      if (marked < batch) return total;
    }
  }
}
