import type { DataSource, EntityManager } from 'typeorm';
import { ConflictError, EndpointPendingError, IdempotencyKeyMismatchError, InvalidRequestError, NotFoundError } from '../../lib/errors';
import type { Completion, LockedRow } from './completion';
import { databaseNow, isDuplicateKey, transaction } from './database';
import type { Task } from './rows';
import { ENDPOINT_STATE, EndpointState, enter, EVENT, RESPONSE_STATUS, shownState, sqlWord, TASK_STATUS, TaskStatus } from '../lifecycle/states';
import type { Announce, History, StoredEvent } from './history';
import { readJson, sqlTime } from './sql-values';
import type { SendTargets, TaskStore } from './task-store';
import { selectorFingerprint } from './request-fingerprint';

/** Which endpoints a retry sends the task to again. */
export type RetrySelector = typeof ENDPOINT_STATE.FAILED | typeof ENDPOINT_STATE.MISSING | 'unfinished' | string[];

/** The states `unfinished` selects: every endpoint that was not heard from, or never sent the task. */
const UNFINISHED: readonly EndpointState[] = [ENDPOINT_STATE.PENDING, ENDPOINT_STATE.CANCELLED, ENDPOINT_STATE.MISSING, ENDPOINT_STATE.SKIPPED];

export interface RetryOutcome {
  task: Task;
  /** The endpoints sent the task again. */
  retried: string[];
  /** What to publish (empty when this is a repeat of a request with the same Idempotency-Key). */
  sends: SendTargets[];
  /**
   * Endpoint → the round this retry superseded, where that round may still wait in the endpoint's queue (it
   * never finished): told with a cancel control message, so that the endpoint never starts it.
   */
  superseded: Record<string, number>;
}

export interface CancelOutcome {
  task: Task;
  /** The round of every endpoint that had not finished: they skip it, or abort it if running. */
  rounds: Record<string, number>;
  /** False when the task was cancelled already: nothing changed. */
  changed: boolean;
}

export interface RemovalOutcome {
  /** The endpoint's responses finished as `cancelled`. */
  cancelled: number;
  /** Task id → the round the endpoint had been sent and not finished: told to skip (or abort) it. */
  rounds: Map<number, number>;
}

/** An endpoint's responses that a removal finishes: not heard from, or (forced) still running. */
const OPEN_FOR_REMOVAL: readonly EndpointState[] = [ENDPOINT_STATE.QUEUED, ENDPOINT_STATE.PENDING, ENDPOINT_STATE.MISSING, ENDPOINT_STATE.RUNNING];
/** Tasks locked by one transaction of a removal: an endpoint of a busy fleet may have many open tasks. */
const REMOVAL_BATCH = 500;

/** The request_key scope of a task's retries (the retention job removes them with the task). */
export const retryScope = (taskId: number): string => `retry:${taskId}`;

/**
 * What operators do to a task once it is out: send it again to some of its endpoints (retry) or stop it
 * (cancel). Each is one transaction under the task's lock, recorded in the history with who asked.
 */
export class TaskOperations {
  constructor(
    private readonly ds: DataSource,
    private readonly completion: Completion,
    private readonly history: History,
    private readonly tasks: TaskStore,
    private readonly announce: Announce,
  ) {}

  /** Locks the task with all its rows; `now` is the database's clock. */
  private async locked(em: EntityManager, task: Task) {
    const now = await databaseNow(this.ds, em);
    const locked = await this.completion.lock(em, [task.id], null, now);
    const t = locked.tasks.get(task.id);
    if (!t) throw new NotFoundError(`no ${task.type} task with identifier '${task.identifier}'`);
    return { locked, t, rows: locked.rowsOf(task.id), now };
  }

  private select(selector: RetrySelector, rows: LockedRow[], status: TaskStatus): LockedRow[] {
    if (selector === ENDPOINT_STATE.FAILED) return rows.filter((r) => r.state === ENDPOINT_STATE.FAILED);
    // A rollout stores `missing`; any other task shows its pending endpoints as missing once INCOMPLETE.
    if (selector === ENDPOINT_STATE.MISSING) return rows.filter((r) => shownState(r.state, status) === ENDPOINT_STATE.MISSING);
    if (selector === 'unfinished') return rows.filter((r) => UNFINISHED.includes(r.state));
    const byName = new Map(rows.map((r) => [r.endpoint, r]));
    const unknown = selector.filter((n) => !byName.has(n));
    if (unknown.length > 0) throw new InvalidRequestError(`endpoints: ${unknown.map((n) => `'${n}'`).join(', ')} not an endpoint of this task`);
    return selector.map((n) => byName.get(n) as LockedRow);
  }

  /**
   * A retry starts a round only once the current one cannot run any more: never beside a running handler
   * (`endpoint_running`), nor while the current round was sent (or is being sent) to an endpoint that has
   * not finished it on a task still open (`endpoint_pending`), where its handler may be running before
   * any receipt says so. Checked under the task's lock, so concurrent retries start one round between them.
   */
  private refuseUnfinished(chosen: LockedRow[], status: TaskStatus): void {
    const running = chosen.filter((r) => r.state === ENDPOINT_STATE.RUNNING);
    if (running.length > 0) {
      throw new ConflictError('endpoint_running', `endpoints still running the task: ${running.map((r) => r.endpoint).join(', ')}`);
    }
    const open = status === TASK_STATUS.CREATED || status === TASK_STATUS.SENT;
    const pending = open ? chosen.filter((r) => r.state === ENDPOINT_STATE.PENDING) : [];
    if (pending.length > 0) throw new EndpointPendingError(pending.map((r) => r.endpoint));
  }

  /**
   * Sends the task again to the selected endpoints, each starting a new round (its previous result stays in
   * the history); the task goes back to CREATED until the broker confirms the send, then SENT, and ends
   * again by the usual rules. A rollout's retried endpoints are queued and go through its slots like the
   * others (the task SENT again); its error budget counts the failures as they then stand. With an
   * Idempotency-Key, a repeat of the same request changes and sends nothing.
   */
  async retry(task: Task, selector: RetrySelector, actor: string | null, idempotencyKey: string | null): Promise<RetryOutcome> {
    const scope = retryScope(task.id);
    let events: StoredEvent[] = [];
    let outcome: RetryOutcome;
    try {
      outcome = await transaction(this.ds, async (em) => {
        // The key is read under the task's lock: a concurrent request with the same key waits for the first
        // one's commit and then replays its answer, instead of judging the rows that request changed.
        const { locked, t, rows, now } = await this.locked(em, task);
        if (idempotencyKey !== null) {
          const seen: { response: unknown; fingerprint: string | null }[] = await em.query(
            'SELECT response, fingerprint FROM request_key WHERE scope = ? AND idempotency_key = ?', [scope, idempotencyKey]);
          if (seen.length > 0 && seen[0].fingerprint !== null && seen[0].fingerprint !== selectorFingerprint(selector)) throw new IdempotencyKeyMismatchError();
          if (seen.length > 0) return { task, retried: readJson<{ retried: string[] }>(seen[0].response).retried, sends: [], superseded: {} };
        }
        const chosen = this.select(selector, rows, t.status);
        this.refuseUnfinished(chosen, t.status);
        if (chosen.length === 0) {
          throw new ConflictError('nothing_to_retry', `no endpoint of the task is ${typeof selector === 'string' ? selector : 'selected'}`);
        }
        const superseded: Record<string, number> = {};
        for (const row of chosen) if (row.status !== RESPONSE_STATUS.FINISHED && row.state !== ENDPOINT_STATE.QUEUED && row.state !== ENDPOINT_STATE.SKIPPED) superseded[row.endpoint] = row.round;
        for (const row of chosen) {
          const previous = { state: row.state, round: row.round, attempts: row.attempts, errnr: row.status === RESPONSE_STATUS.FINISHED ? row.errnr : null, errmsg: row.errmsg, payload: readJson(row.payload) };
          if (row.status !== null) t.received--;
          if (row.status === RESPONSE_STATUS.FINISHED) {
            t.finished--;
            if (row.errnr !== 0) t.failed--;
          }
          const kind = enter(row, t.rollout ? ENDPOINT_STATE.QUEUED : ENDPOINT_STATE.PENDING, EVENT.RETRIED) as typeof EVENT.RETRIED;
          Object.assign(row, {
            status: null, round: row.round + 1, attempts: 0, errnr: 0, errmsg: null, payload: null,
            startTime: null, sentTime: null, changed: true,
          });
          locked.recordEndpoint(t, kind, { endpoint: row.endpoint, round: row.round, previous }, actor);
        }
        if (t.rollout) {
          // Sent batch by batch from here (Locked.advance), each batch recorded as it is decided.
          if (t.status !== TASK_STATUS.CREATED) enter(t, TASK_STATUS.SENT, EVENT.RETRIED);
          t.rollout = { ...t.rollout, errors_before: rows.filter((r) => r.state === ENDPOINT_STATE.FAILED || r.state === ENDPOINT_STATE.MISSING).length };
          await em.query('UPDATE task SET rollout = ? WHERE id = ?', [JSON.stringify(t.rollout), t.id]);
        } else {
          enter(t, TASK_STATUS.CREATED, EVENT.RETRIED);
          t.clearSentTime = true;
        }
        t.endTime = null;
        // A new run, with the task's whole timeout (from the send, once the broker confirms it, for a task sent again whole).
        t.deadline = new Date(now.getTime() + t.timeout * 1000);
        events = await locked.write(em, this.history);
        const retried = chosen.map((r) => r.endpoint);
        if (idempotencyKey !== null) {
          await em.query('INSERT INTO request_key (scope, idempotency_key, response, created_time, fingerprint) VALUES (?, ?, ?, ?, ?)',
            [scope, idempotencyKey, JSON.stringify({ retried }), sqlTime(now), selectorFingerprint(selector)]);
        }
        const fresh = await this.tasks.findIn(em, task.id) as Task;
        if (t.rollout) {
          return { task: fresh, retried, superseded, sends: locked.sends.map((s): SendTargets => ({ task: fresh, round: s.round, endpoints: s.endpoints, decided: true })) };
        }
        const byRound = new Map<number, string[]>();
        for (const r of chosen) byRound.set(r.round, [...byRound.get(r.round) ?? [], r.endpoint]);
        return { task: fresh, retried, superseded, sends: [...byRound].map(([round, endpoints]) => ({ task: fresh, round, endpoints })) };
      });
    } catch (err) {
      // The same key at the same moment from elsewhere: that one did it; this is its repeat.
      if (idempotencyKey === null || !isDuplicateKey(err)) throw err;
      return this.retry(task, selector, actor, idempotencyKey);
    }
    this.announce(events);
    return outcome;
  }

  /**
   * Cancels the task: endpoints that have not started it skip it (state `cancelled`); those running it are
   * told to abort, and what they then report is kept. A rollout sends to nobody more: the endpoints it had
   * not sent the task to are `skipped`. A task that is DONE cannot be cancelled.
   */
  async cancel(task: Task, actor: string | null): Promise<CancelOutcome> {
    let events: StoredEvent[] = [];
    const outcome = await transaction(this.ds, async (em) => {
      const { locked, t, rows, now } = await this.locked(em, task);
      if (t.status === TASK_STATUS.DONE) throw new ConflictError('task_ended', `the task is ${TASK_STATUS.DONE}; there is nothing left to cancel`);
      const rounds: Record<string, number> = {};
      // Endpoints never sent the task need no word of its cancel.
      const unsent = (r: LockedRow): boolean => r.state === ENDPOINT_STATE.QUEUED || r.state === ENDPOINT_STATE.SKIPPED;
      for (const r of rows) if (r.status !== RESPONSE_STATUS.FINISHED && !unsent(r)) rounds[r.endpoint] = r.round;
      if (t.status === TASK_STATUS.CANCELLED) return { task, rounds, changed: false };
      const pending = rows.filter((r) => r.state === ENDPOINT_STATE.PENDING || r.state === ENDPOINT_STATE.MISSING);
      for (const row of pending) {
        enter(row, ENDPOINT_STATE.CANCELLED, EVENT.CANCELLED);
        row.changed = true;
      }
      const queued = rows.filter((r) => r.state === ENDPOINT_STATE.QUEUED);
      for (const row of queued) {
        enter(row, ENDPOINT_STATE.SKIPPED, EVENT.CANCELLED);
        row.changed = true;
      }
      const kind = enter(t, TASK_STATUS.CANCELLED);
      t.endTime = now;
      locked.record(t, {
        kind, actor,
        detail: { cancelled: pending.length, running: rows.filter((r) => r.state === ENDPOINT_STATE.RUNNING).length, ...(t.rollout ? { skipped: queued.length } : {}) },
      });
      events = await locked.write(em, this.history);
      return { task: await this.tasks.findIn(em, task.id) as Task, rounds, changed: true };
    });
    this.announce(events);
    return outcome;
  }

  /**
   * Finishes every open response of `endpoint` as `cancelled` (event `removed`, with who asked), batch
   * after batch. Refused with 409 `endpoint_running` while a handler of it runs a task, unless `force`:
   * then those rows are cancelled too and the caller tells the endpoint to abort them. The tasks end by the
   * usual rules (a task left waiting for nobody else is made INCOMPLETE by the sweep).
   */
  async removeEndpoint(endpoint: string, force: boolean, actor: string | null): Promise<RemovalOutcome> {
    const states = OPEN_FOR_REMOVAL.map(sqlWord).join(', ');
    const refuseRunning = (ids: number[]): void => {
      if (ids.length > 0 && !force) {
        throw new ConflictError('endpoint_running', `endpoint '${endpoint}' is running ${ids.length === 1 ? 'task' : 'tasks'} ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', ...' : ''}; remove it with force to cancel them`);
      }
    };
    refuseRunning((await this.ds.query(`SELECT task_id FROM task_response WHERE endpoint = ? AND state = ${sqlWord(ENDPOINT_STATE.RUNNING)} ORDER BY task_id LIMIT 11`, [endpoint]) as { task_id: unknown }[]).map((r) => Number(r.task_id)));
    const outcome: RemovalOutcome = { cancelled: 0, rounds: new Map() };
    // Tasks just stored without their rows name the endpoint too.
    await this.tasks.responseRows.ensureAll();
    let after = 0;
    for (;;) {
      let events: StoredEvent[] = [];
      const ids = await transaction(this.ds, async (em) => {
        const found: { task_id: unknown }[] = await em.query(`SELECT task_id FROM task_response WHERE endpoint = ? AND state IN (${states}) AND task_id > ?
          ORDER BY task_id LIMIT ${REMOVAL_BATCH}`, [endpoint, after]);
        const taskIds = found.map((r) => Number(r.task_id));
        if (taskIds.length === 0) return taskIds;
        const now = await databaseNow(this.ds, em);
        const locked = await this.completion.lock(em, taskIds, [endpoint], now);
        const rows = taskIds.map((id) => ({ t: locked.tasks.get(id), row: locked.row(id, endpoint) }));
        // Read again under the lock: a receipt may have come since the first look.
        refuseRunning(rows.filter(({ row }) => row?.state === ENDPOINT_STATE.RUNNING).map(({ row }) => (row as LockedRow).taskId));
        for (const { t, row } of rows) {
          if (!t || !row || !OPEN_FOR_REMOVAL.includes(row.state)) continue;
          // A queued row was never sent: nothing waits in a queue or runs.
          if (row.state !== ENDPOINT_STATE.QUEUED) outcome.rounds.set(t.id, row.round);
          enter(row, ENDPOINT_STATE.CANCELLED, EVENT.REMOVED);
          row.changed = true;
          locked.recordEndpoint(t, EVENT.REMOVED, { endpoint, round: row.round }, actor);
          outcome.cancelled++;
        }
        events = await locked.write(em, this.history);
        return taskIds;
      });
      this.announce(events);
      if (ids.length < REMOVAL_BATCH) return outcome;
      after = ids[ids.length - 1];
    }
  }
}
