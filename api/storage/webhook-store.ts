import type { DataSource, EntityManager, QueryResult } from 'typeorm';
import { matches, parseSelector, type Selector } from '../../protocol/label-selector';
import { SELECTABLE_FACTS, selectable, type Facts, type Labels } from '../../protocol/labels';
import { DELIVERY_STATUS, type DeliveryStatus, sqlWord, WEBHOOK_EVENT, type WebhookEvent } from '../lifecycle/states';
import { dialectOf, exclusive, transaction } from './database';
import { readId, readJson, readOptionalTime, readTime, sqlTime } from './sql-values';

/** A subscription, as stored. `events` and `types` as lists (stored comma-delimited). */
export interface Webhook {
  id: number;
  url: string;
  events: WebhookEvent[];
  types: string[] | null;
  /** A label selector (as written): only tasks some endpoint of which matches, and matching endpoints. Null: all. */
  selector: string | null;
  description: string | null;
  secret: string;
  /** The secret the last rotation replaced: deliveries are signed with it too until `previous_secret_until`. */
  previous_secret: string | null;
  previous_secret_until: Date | null;
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: Date | null;
  created_by: string | null;
  created_time: Date;
  updated_time: Date;
}

export type NewWebhook = Omit<Webhook, 'id' | 'enabled' | 'disabled_reason' | 'failing_since' | 'updated_time' | 'previous_secret' | 'previous_secret_until'>;

/** One event for one subscription: the outbox row, and the log of its delivery. */
export interface Delivery {
  id: number;
  webhook_id: number;
  task_id: number;
  event_id: number;
  event: WebhookEvent;
  task_type: string;
  identifier: string;
  event_time: Date;
  /** Where its api.webhooks.retry_for counts from: the event, or the last redelivery asked for. */
  retry_from: Date;
  status: DeliveryStatus;
  attempt: number;
  next_time: Date | null;
  body: string | null;
  http_status: number | null;
  duration_ms: number | null;
  last_error: string | null;
  last_attempt_time: Date | null;
}

/** An event of a transaction that a subscription may want (see `History.append`). */
export interface OutboxEvent {
  taskId: number;
  eventId: number;
  event: WebhookEvent;
  taskType: string;
  identifier: string;
  time: Date;
}

/** A delivery attempt's outcome, recorded by `WebhookStore.record`. */
export interface Attempt {
  delivery: Delivery;
  ok: boolean;
  httpStatus: number | null;
  durationMs: number;
  error: string | null;
  /** When to try again (ignored when ok); null: no more tries (the row ends `failed`). */
  nextTime: Date | null;
}

type Row = Record<string, unknown>;

/** An enabled subscription with a selector, parsed once (see WebhookStore.selective). */
interface Selective {
  id: number;
  events: readonly WebhookEvent[];
  types: readonly string[] | null;
  selector: string;
  parsed: Selector;
}

const selectiveOf = (w: Webhook): Selective => ({ id: w.id, events: w.events, types: w.types, selector: w.selector as string, parsed: parseSelector(w.selector as string) });
const W_COLUMNS = 'id, url, events, types, selector, description, secret, previous_secret, previous_secret_until, enabled, disabled_reason, failing_since, created_by, created_time, updated_time';
const D_COLUMNS = 'id, webhook_id, task_id, event_id, event, task_type, identifier, event_time, retry_from, status, attempt, next_time, body, http_status, '
  + 'duration_ms, last_error, last_attempt_time';
const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
const PENDING = sqlWord(DELIVERY_STATUS.PENDING);
/** The outbox rows of tasks' own `notify` URLs carry this webhook id: no subscription has it (ids start at 1). */
export const NOTIFY_WEBHOOK = 0;
/** The events a task's own `notify` URL gets: its end. */
const NOTIFY_EVENTS: ReadonlySet<WebhookEvent> = new Set([WEBHOOK_EVENT.TASK_DONE, WEBHOOK_EVENT.TASK_INCOMPLETE, WEBHOOK_EVENT.TASK_STOPPED, WEBHOOK_EVENT.TASK_CANCELLED]);

/** `,a,b,` → [a, b]; the stored form of a list, matched with INSTR(list, ',a,'). */
const toList = (s: string): string[] => s.split(',').filter((x) => x !== '');
const fromList = (xs: readonly string[]): string => `,${xs.join(',')},`;
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function webhookOf(r: Row): Webhook {
  return {
    id: readId(r.id), url: String(r.url), events: toList(String(r.events)) as WebhookEvent[], types: r.types === null ? null : toList(String(r.types)),
    selector: str(r.selector), description: str(r.description), secret: String(r.secret), previous_secret: str(r.previous_secret),
    previous_secret_until: readOptionalTime(r.previous_secret_until), enabled: Number(r.enabled) === 1, disabled_reason: str(r.disabled_reason),
    failing_since: readOptionalTime(r.failing_since), created_by: str(r.created_by), created_time: readTime(r.created_time), updated_time: readTime(r.updated_time),
  };
}

function deliveryOf(r: Row): Delivery {
  return {
    id: readId(r.id), webhook_id: readId(r.webhook_id), task_id: readId(r.task_id), event_id: readId(r.event_id), event: String(r.event) as WebhookEvent,
    task_type: String(r.task_type), identifier: String(r.identifier), event_time: readTime(r.event_time), retry_from: readTime(r.retry_from), status: String(r.status) as DeliveryStatus,
    attempt: Number(r.attempt), next_time: readOptionalTime(r.next_time), body: str(r.body), http_status: r.http_status === null ? null : Number(r.http_status),
    duration_ms: r.duration_ms === null ? null : Number(r.duration_ms), last_error: str(r.last_error), last_attempt_time: readOptionalTime(r.last_attempt_time),
  };
}

/**
 * Webhook subscriptions and their outbox (raw SQL for MySQL and SQLite). `active` is this process's
 * knowledge that some subscription is enabled: while it is false the write paths add no statement at all.
 * It is set at once by a subscription made here and refreshed by a job of its own every
 * api.webhooks.interval (so a subscription made through another API instance is seen here within it; the
 * API answers such a change only once that time has passed: see WebhookService).
 */
/** Endpoint names per lookup of a large task's label sets. */
const LABEL_LOOKUP_CHUNK = 2000;

export class WebhookStore {
  active = false;
  /**
   * Whether tasks may carry their own `notify` URL (api.webhooks.allow_per_task_urls, with a notify_secret):
   * then the transactions that end tasks write their notifications to the outbox too.
   */
  notifying = false;
  /**
   * The enabled subscriptions with a selector, as this process knows them (refreshed with `active`): their
   * rows are chosen here, since a selector cannot be matched in SQL. The INSERT still joins the stored row
   * (enabled, same selector), so that a subscription disabled, deleted or changed meanwhile gets nothing.
   */
  private selective: Selective[] = [];
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  private query<T = Row[]>(sql: string, params: unknown[] = []): Promise<T> {
    return exclusive(this.ds, () => this.ds.query(sql, params) as Promise<T>);
  }

  private change(sql: string, params: unknown[]): Promise<number> {
    return exclusive(this.ds, async () => {
      const runner = this.ds.createQueryRunner();
      try {
        return ((await runner.query(sql, params, true)) as QueryResult).affected ?? 0;
      } finally {
        await runner.release();
      }
    });
  }

  async create(w: NewWebhook): Promise<Webhook> {
    const id = await exclusive(this.ds, async () => {
      const runner = this.ds.createQueryRunner();
      try {
        const res = await runner.query(
          `INSERT INTO webhook (url, events, types, selector, description, secret, enabled, created_by, created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
          [w.url, fromList(w.events), w.types === null ? null : fromList(w.types), w.selector, w.description, w.secret, w.created_by, sqlTime(w.created_time),
            sqlTime(w.created_time)], true) as QueryResult;
        return this.mysql ? readId((res.raw as { insertId: unknown }).insertId) : readId(res.raw);
      } finally {
        await runner.release();
      }
    });
    this.active = true;
    const made = (await this.find(id)) as Webhook;
    this.keepSelective(made);
    return made;
  }

  async find(id: number): Promise<Webhook | null> {
    const rows = await this.query(`SELECT ${W_COLUMNS} FROM webhook WHERE id = ?`, [id]);
    return rows.length ? webhookOf(rows[0]) : null;
  }

  async list(): Promise<Webhook[]> {
    return (await this.query(`SELECT ${W_COLUMNS} FROM webhook ORDER BY id`)).map(webhookOf);
  }

  /** Replaces the changeable fields; enabling clears the failure record. False when the subscription is gone. */
  async update(w: Webhook, now: Date): Promise<boolean> {
    const n = await this.change(
      `UPDATE webhook SET url = ?, events = ?, types = ?, selector = ?, description = ?, enabled = ?, disabled_reason = ?, failing_since = ?, updated_time = ? WHERE id = ?`,
      [w.url, fromList(w.events), w.types === null ? null : fromList(w.types), w.selector, w.description, w.enabled ? 1 : 0, w.disabled_reason,
        w.failing_since === null ? null : sqlTime(w.failing_since), sqlTime(now), w.id]);
    if (w.enabled) this.active = true;
    this.keepSelective(w);
    return n > 0;
  }

  /**
   * Replaces the secret by `secret`; the one replaced keeps signing until `until` (one statement: a
   * rotation during another's overlap drops the secret before the replaced one). False when it is gone.
   */
  async rotate(id: number, secret: string, now: Date, until: Date): Promise<boolean> {
    // MySQL assigns left to right and SQLite from the old row: previous_secret gets the old secret on both.
    return (await this.change('UPDATE webhook SET previous_secret = secret, previous_secret_until = ?, secret = ?, updated_time = ? WHERE id = ?',
      [sqlTime(until), secret, sqlTime(now), id])) > 0;
  }

  /** Deletes the subscription and its outbox rows (delivered or not). */
  async delete(id: number): Promise<boolean> {
    return transaction(this.ds, async (em) => {
      await em.query('DELETE FROM webhook_delivery WHERE webhook_id = ?', [id]);
      return (await changeIn(em, 'DELETE FROM webhook WHERE id = ?', [id])) > 0;
    });
  }

  /** The event time of the oldest pending delivery of an enabled subscription (null: none). */
  async oldestPending(): Promise<Date | null> {
    const rows = await this.query(`SELECT MIN(event_time) AS t FROM webhook_delivery WHERE status = ${PENDING}
      AND (webhook_id = ${NOTIFY_WEBHOOK} OR webhook_id IN (SELECT id FROM webhook WHERE enabled = 1))`);
    return readOptionalTime(rows[0]?.t);
  }

  async refreshActive(): Promise<boolean> {
    this.active = (await this.query('SELECT 1 AS x FROM webhook WHERE enabled = 1 LIMIT 1')).length > 0;
    const rows = this.active ? await this.query(`SELECT ${W_COLUMNS} FROM webhook WHERE enabled = 1 AND selector IS NOT NULL ORDER BY id`) : [];
    this.selective = rows.map(webhookOf).map(selectiveOf);
    return this.active;
  }

  /** This process's list of enabled subscriptions with a selector, after a change made here (others learn it at their refresh). */
  private keepSelective(w: Webhook): void {
    this.selective = this.selective.filter((s) => s.id !== w.id);
    if (w.enabled && w.selector !== null) this.selective = [...this.selective, selectiveOf(w)].sort((a, b) => a.id - b.id);
  }

  /**
   * Within the transaction of a change: one outbox row per event and enabled subscription that wants it,
   * in one INSERT … SELECT (the events as a derived table, joined with the subscriptions). Ids follow the
   * events' order, so that per task the outbox's order is the history's.
   */
  async enqueue(em: EntityManager, events: readonly OutboxEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (this.notifying) await this.enqueueNotify(em, events.filter((e) => NOTIFY_EVENTS.has(e.event)));
    if (!this.active) return;
    const selects = events.map((_e, i) => i === 0
      ? 'SELECT 0 AS n, ? AS task_id, ? AS event_id, ? AS event, ? AS task_type, ? AS identifier, ? AS event_time, ? AS ev, ? AS ty'
      : `SELECT ${i}, ?, ?, ?, ?, ?, ?, ?, ?`);
    const params = events.flatMap((e) => [e.taskId, e.eventId, e.event, e.taskType, e.identifier, sqlTime(e.time), `,${e.event},`, `,${e.taskType},`]);
    await em.query(
      `INSERT INTO webhook_delivery (webhook_id, task_id, event_id, event, task_type, identifier, event_time, retry_from, status, attempt, next_time)
       SELECT w.id, v.task_id, v.event_id, v.event, v.task_type, v.identifier, v.event_time, v.event_time, ${PENDING}, 0, v.event_time
       FROM (${selects.join(' UNION ALL ')}) AS v
       JOIN webhook w ON w.enabled = 1 AND w.selector IS NULL AND INSTR(w.events, v.ev) > 0 AND (w.types IS NULL OR INSTR(w.types, v.ty) > 0)
       ORDER BY v.n, w.id`, params);
    if (this.selective.length > 0) await this.enqueueSelective(em, events);
  }

  /**
   * A task's own notification: a row of webhook 0 (no subscription: the task's `notify_url`, signed with
   * api.webhooks.notify_secret) per end event of a task that has a URL, in the same transaction. One
   * INSERT … SELECT joining the task rows, only when the transaction ends some task.
   */
  private async enqueueNotify(em: EntityManager, events: readonly OutboxEvent[]): Promise<void> {
    if (events.length === 0) return;
    const selects = events.map((_e, i) => i === 0
      ? 'SELECT 0 AS n, ? AS task_id, ? AS event_id, ? AS event, ? AS task_type, ? AS identifier, ? AS event_time'
      : `SELECT ${i}, ?, ?, ?, ?, ?, ?`);
    const params = events.flatMap((e) => [e.taskId, e.eventId, e.event, e.taskType, e.identifier, sqlTime(e.time)]);
    await em.query(
      `INSERT INTO webhook_delivery (webhook_id, task_id, event_id, event, task_type, identifier, event_time, retry_from, status, attempt, next_time)
       SELECT ${NOTIFY_WEBHOOK}, v.task_id, v.event_id, v.event, v.task_type, v.identifier, v.event_time, v.event_time, ${PENDING}, 0, v.event_time
       FROM (${selects.join(' UNION ALL ')}) AS v JOIN task t ON t.id = v.task_id AND t.notify_url IS NOT NULL
       ORDER BY v.n`, params);
  }

  /** The URL a task's own notifications go to (null: none, or the task is gone). */
  async notifyUrl(taskId: number): Promise<string | null> {
    const rows = await this.query('SELECT notify_url FROM task WHERE id = ?', [taskId]);
    return rows.length ? str(rows[0].notify_url) : null;
  }

  /**
   * The label sets of tasks stored without their response rows so far (ResponseRows), from their expected
   * endpoints: a large broadcast's `created` event is written before its rows.
   */
  private async labelsOfRowless(em: EntityManager, taskIds: number[], facts: boolean, byTask: Map<number, Record<string, string>[]>): Promise<void> {
    if (taskIds.length === 0) return;
    const tasks = await em.query(`SELECT id, type, expected_endpoints FROM task WHERE id IN (${marks(taskIds.length)}) AND rows_pending = 1`, taskIds) as Row[];
    for (const t of tasks) {
      const names = readJson<string[]>(t.expected_endpoints);
      const sets: Record<string, string>[] = [];
      for (let i = 0; i < names.length; i += LABEL_LOOKUP_CHUNK) {
        const chunk = names.slice(i, i + LABEL_LOOKUP_CHUNK);
        const rows = await em.query(`SELECT DISTINCT labels${facts ? ', facts' : ''} FROM endpoint WHERE task_type = ? AND name IN (${marks(chunk.length)})`,
          [t.type, ...chunk]) as Row[];
        for (const r of rows) sets.push(selectable(readJson<Labels | null>(r.labels), facts ? readJson<Facts | null>(r.facts) : null));
      }
      byTask.set(readId(t.id), sets);
    }
  }

  /**
   * The rows of the subscriptions with a selector: an event of a task is theirs when some endpoint of the
   * task (its response rows: every expected endpoint, also those a rollout has not reached yet) has
   * registered labels and facts that match. One SELECT of those labels and one INSERT, only while such a
   * subscription wants one of the events.
   */
  private async enqueueSelective(em: EntityManager, events: readonly OutboxEvent[]): Promise<void> {
    const wanted = events.flatMap((e) => this.selective
      .filter((s) => s.events.includes(e.event) && (s.types === null || s.types.includes(e.taskType)))
      .map((s) => ({ e, s })));
    if (wanted.length === 0) return;
    const taskIds = [...new Set(wanted.map((x) => x.e.taskId))];
    // The distinct label sets of a task's endpoints (a fleet has few, however many endpoints); the facts only
    // when a selector names one, since they differ per host.
    const facts = wanted.some((x) => x.s.parsed.some((r) => (SELECTABLE_FACTS as readonly string[]).includes(r.key)));
    const rows = await em.query(
      `SELECT DISTINCT r.task_id, p.labels${facts ? ', p.facts' : ''} FROM task_response r JOIN task t ON t.id = r.task_id
       JOIN endpoint p ON p.task_type = t.type AND p.name = r.endpoint WHERE r.task_id IN (${marks(taskIds.length)})`, taskIds) as Row[];
    const byTask = new Map<number, Record<string, string>[]>();
    for (const r of rows) {
      const id = readId(r.task_id);
      const sets = byTask.get(id) ?? [];
      sets.push(selectable(readJson<Labels | null>(r.labels), facts ? readJson<Facts | null>(r.facts) : null));
      byTask.set(id, sets);
    }
    await this.labelsOfRowless(em, taskIds.filter((id) => !byTask.has(id)), facts, byTask);
    const chosen = wanted.filter((x) => (byTask.get(x.e.taskId) ?? []).some((labels) => matches(x.s.parsed, labels)));
    if (chosen.length === 0) return;
    const selects = chosen.map((_x, i) => i === 0
      ? 'SELECT 0 AS n, ? AS webhook_id, ? AS sel, ? AS task_id, ? AS event_id, ? AS event, ? AS task_type, ? AS identifier, ? AS event_time'
      : `SELECT ${i}, ?, ?, ?, ?, ?, ?, ?, ?`);
    const params = chosen.flatMap(({ e, s }) => [s.id, s.selector, e.taskId, e.eventId, e.event, e.taskType, e.identifier, sqlTime(e.time)]);
    await em.query(
      `INSERT INTO webhook_delivery (webhook_id, task_id, event_id, event, task_type, identifier, event_time, retry_from, status, attempt, next_time)
       SELECT w.id, v.task_id, v.event_id, v.event, v.task_type, v.identifier, v.event_time, v.event_time, ${PENDING}, 0, v.event_time
       FROM (${selects.join(' UNION ALL ')}) AS v
       JOIN webhook w ON w.id = v.webhook_id AND w.enabled = 1 AND w.selector = v.sel
       ORDER BY v.n`, params);
  }

  /**
   * Writes an `endpoint.stale` event to the outbox of every enabled subscription that wants it, once per
   * endpoint and silence: for each endpoint whose newest heartbeat is older than `staleBefore` and newer
   * than the one `endpoint_stale_notice` holds, the notice is moved to that heartbeat and the rows are
   * inserted in one transaction; the conditional UPDATE lets one API instance of several do it. A new
   * heartbeat ends the silence, and the next one is announced again. The rows carry their body (there is no
   * task to summarize) and task id 0: a subscription's endpoint events are delivered in order. `types` does not
   * filter them. Answers how many silences were announced.
   */
  async announceStale(now: Date, staleBefore: Date, staleAfterS: number): Promise<number> {
    const rows = await this.query(
      `SELECT x.name, x.hb, x.types FROM (SELECT name, MAX(last_heartbeat) AS hb, GROUP_CONCAT(task_type) AS types FROM endpoint GROUP BY name) x
       LEFT JOIN endpoint_stale_notice n ON n.name = x.name
       WHERE x.hb < ? AND (n.heartbeat IS NULL OR n.heartbeat < x.hb) ORDER BY x.hb`, [sqlTime(staleBefore)]);
    let announced = 0;
    for (const r of rows) {
      const name = String(r.name);
      const heartbeat = readTime(r.hb);
      await this.change(`INSERT ${this.mysql ? 'IGNORE' : 'OR IGNORE'} INTO endpoint_stale_notice (name, heartbeat) VALUES (?, NULL)`, [name]);
      const excluded = await this.unmatchedStale(name);
      const body = JSON.stringify({
        type: WEBHOOK_EVENT.ENDPOINT_STALE, timestamp: now.toISOString(),
        data: { endpoint: { name, task_types: String(r.types).split(',').sort(), last_heartbeat: heartbeat.toISOString(), stale_after: staleAfterS } },
      });
      const done = await transaction(this.ds, async (em) => {
        const moved = await changeIn(em, 'UPDATE endpoint_stale_notice SET heartbeat = ? WHERE name = ? AND (heartbeat IS NULL OR heartbeat < ?)',
          [sqlTime(heartbeat), name, sqlTime(heartbeat)]);
        if (moved === 0) return false;
        await em.query(
          `INSERT INTO webhook_delivery (webhook_id, task_id, event_id, event, task_type, identifier, event_time, retry_from, status, attempt, next_time, body)
           SELECT id, 0, 0, ?, '', ?, ?, ?, ${PENDING}, 0, ?, ? FROM webhook WHERE enabled = 1 AND INSTR(events, ?) > 0
           ${excluded.length ? `AND id NOT IN (${marks(excluded.length)})` : ''} ORDER BY id`,
          [WEBHOOK_EVENT.ENDPOINT_STALE, name, sqlTime(now), sqlTime(now), sqlTime(now), body, `,${WEBHOOK_EVENT.ENDPOINT_STALE},`, ...excluded]);
        return true;
      });
      if (done) announced += 1;
    }
    return announced;
  }

  /**
   * The enabled subscriptions to `endpoint.stale` whose selector the endpoint's labels and facts (of its
   * newest heartbeat) do not match: they are left out of its announcement. Read afresh (not a hot path).
   */
  private async unmatchedStale(name: string): Promise<number[]> {
    const subs = (await this.query(`SELECT ${W_COLUMNS} FROM webhook WHERE enabled = 1 AND selector IS NOT NULL AND INSTR(events, ?) > 0`,
      [`,${WEBHOOK_EVENT.ENDPOINT_STALE},`])).map(webhookOf).map(selectiveOf);
    if (subs.length === 0) return [];
    const [row] = await this.query('SELECT labels, facts FROM endpoint WHERE name = ? ORDER BY last_heartbeat DESC LIMIT 1', [name]);
    const labels = row ? selectable(readJson<Labels | null>(row.labels), readJson<Facts | null>(row.facts)) : {};
    return subs.filter((s) => !matches(s.parsed, labels)).map((s) => s.id);
  }

  /**
   * Takes up to `limit` deliveries due at `now` and leases them until `leaseUntil` (their next_time), with
   * their attempt counted: another instance leaves them alone meanwhile, and takes them over if this one
   * dies before recording the outcome. A delivery is due only when no earlier delivery of the same task to
   * the same subscription is still pending, which keeps each task's events in order. The candidates are
   * read without locks, then locked with SKIP LOCKED and checked again (MySQL), so that instances share
   * the work and none takes a row another has just leased.
   */
  async claim(now: Date, leaseUntil: Date, limit: number): Promise<Delivery[]> {
    const candidates = (await this.query<{ id: unknown }[]>(claimCandidatesSql(limit), [sqlTime(now)])).map((r) => readId(r.id));
    if (candidates.length === 0) return [];
    return transaction(this.ds, async (em) => {
      const rows = (await em.query(
        `SELECT ${D_COLUMNS} FROM webhook_delivery WHERE id IN (${marks(candidates.length)}) AND status = ${PENDING} AND next_time <= ?
         ORDER BY id${this.mysql ? ' FOR UPDATE SKIP LOCKED' : ''}`, [...candidates, sqlTime(now)]) as Row[]).map(deliveryOf);
      if (rows.length === 0) return [];
      await em.query(`UPDATE webhook_delivery SET attempt = attempt + 1, next_time = ?, last_attempt_time = ? WHERE id IN (${marks(rows.length)})`,
        [sqlTime(leaseUntil), sqlTime(now), ...rows.map((d) => d.id)]);
      for (const d of rows) d.attempt += 1;
      return rows;
    });
  }

  /** Keeps the body a delivery is sent with, so that every retry sends the same bytes under the same webhook-id. */
  async keepBody(id: number, body: string): Promise<void> {
    await this.change('UPDATE webhook_delivery SET body = ? WHERE id = ? AND body IS NULL', [body, id]);
  }

  /**
   * Records an attempt (if the lease is still this attempt's). A success clears the subscription's
   * failure record; a failure starts it, and a subscription failing for `retryForMs` is disabled, its
   * pending deliveries failed. Answers whether the subscription was disabled now.
   */
  async record(a: Attempt, now: Date, retryForMs: number, keepMs: number): Promise<boolean> {
    const d = a.delivery;
    const expire = sqlTime(new Date(now.getTime() + keepMs));
    return transaction(this.ds, async (em) => {
      const status = a.ok ? DELIVERY_STATUS.DELIVERED : a.nextTime === null ? DELIVERY_STATUS.FAILED : DELIVERY_STATUS.PENDING;
      const changed = await changeIn(em,
        `UPDATE webhook_delivery SET status = ?, next_time = ?, http_status = ?, duration_ms = ?, last_error = ?, expire_time = ?
         WHERE id = ? AND attempt = ? AND status = ${PENDING}`,
        [status, a.ok || a.nextTime === null ? null : sqlTime(a.nextTime), a.httpStatus, Math.round(a.durationMs), a.error,
          status === DELIVERY_STATUS.PENDING ? null : expire, d.id, d.attempt]);
      if (changed === 0) return false;
      if (a.ok) {
        await em.query('UPDATE webhook SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL', [d.webhook_id]);
        return false;
      }
      await em.query('UPDATE webhook SET failing_since = ? WHERE id = ? AND failing_since IS NULL', [sqlTime(now), d.webhook_id]);
      const since = await em.query('SELECT failing_since FROM webhook WHERE id = ? AND enabled = 1', [d.webhook_id]) as Row[];
      const failingSince = since.length ? readOptionalTime(since[0].failing_since) : null;
      if (failingSince === null || now.getTime() - failingSince.getTime() < retryForMs) return false;
      const reason = `every delivery failed from ${failingSince.toISOString()} to ${now.toISOString()}`;
      await em.query('UPDATE webhook SET enabled = 0, disabled_reason = ?, updated_time = ? WHERE id = ?', [reason, sqlTime(now), d.webhook_id]);
      await em.query(
        `UPDATE webhook_delivery SET status = ?, next_time = NULL, expire_time = ?, last_error = COALESCE(last_error, ?) WHERE webhook_id = ? AND status = ${PENDING}`,
        [DELIVERY_STATUS.FAILED, expire, 'the subscription was disabled', d.webhook_id]);
      return true;
    });
  }

  /**
   * Sends a delivery again (whatever its status): pending from `now`, with a new window of
   * api.webhooks.retry_for, under the same webhook-id and body. False when it is not the subscription's.
   */
  async redeliver(webhookId: number, id: number, now: Date): Promise<boolean> {
    return (await this.change(
      `UPDATE webhook_delivery SET status = ${PENDING}, next_time = ?, retry_from = ?, expire_time = NULL WHERE id = ? AND webhook_id = ?`,
      [sqlTime(now), sqlTime(now), id, webhookId])) > 0;
  }

  async findDelivery(id: number): Promise<Delivery | null> {
    const rows = await this.query(`SELECT ${D_COLUMNS} FROM webhook_delivery WHERE id = ?`, [id]);
    return rows.length ? deliveryOf(rows[0]) : null;
  }

  /** Deletes up to `limit` deliveries whose time in the log is over; answers how many. */
  async prune(now: Date, limit: number): Promise<number> {
    // The derived table lets MySQL delete from the table it selects from; SQLite has no DELETE … LIMIT.
    return this.change(`DELETE FROM webhook_delivery WHERE id IN (SELECT id FROM (SELECT id FROM webhook_delivery WHERE expire_time < ?
      ORDER BY expire_time LIMIT ${Math.floor(limit)}) AS x)`, [sqlTime(now)]);
  }

  /** A subscription's deliveries, newest first, before `beforeId` (0: from the newest). */
  async deliveries(webhookId: number, beforeId: number, limit: number): Promise<Delivery[]> {
    const rows = await this.query(
      `SELECT ${D_COLUMNS} FROM webhook_delivery WHERE webhook_id = ?${beforeId > 0 ? ' AND id < ?' : ''} ORDER BY id DESC LIMIT ${Math.floor(limit)}`,
      beforeId > 0 ? [webhookId, beforeId] : [webhookId]);
    return rows.map(deliveryOf);
  }

  /** What a payload reports of a task: its row's summary (null once retention removed it) and the event's detail. */
  async taskSummary(taskId: number, eventId: number): Promise<{ task: Row | null; detail: unknown }> {
    const tasks = await this.query(
      `SELECT id, identifier, type, status, expected_count, received_count, finished_count, failed_count, start_time, sent_time, end_time
       FROM task WHERE id = ?`, [taskId]);
    const events = await this.query('SELECT detail FROM task_event WHERE id = ?', [eventId]);
    return { task: tasks[0] ?? null, detail: events.length ? readJson(events[0].detail) : null };
  }
}

/**
 * The delivery job's look for due deliveries (one parameter: now), read without locks. Exported for the
 * bench, which shows its plan: a range of idx_webhook_delivery_due, not a scan of the log.
 */
export function claimCandidatesSql(limit: number): string {
  return `SELECT d.id FROM webhook_delivery d WHERE d.status = ${PENDING} AND d.next_time <= ?
         AND (d.webhook_id = ${NOTIFY_WEBHOOK} OR d.webhook_id IN (SELECT id FROM webhook WHERE enabled = 1))
         AND NOT EXISTS (SELECT 1 FROM webhook_delivery p WHERE p.webhook_id = d.webhook_id AND p.task_id = d.task_id AND p.id < d.id AND p.status = ${PENDING})
       ORDER BY d.next_time, d.id LIMIT ${Math.floor(limit)}`;
}

/** Runs a statement in the transaction of `em`; answers how many rows it changed. */
async function changeIn(em: EntityManager, sql: string, params: unknown[]): Promise<number> {
  const runner = em.queryRunner;
  if (!runner) throw new Error('changeIn needs a transaction');
  return ((await runner.query(sql, params, true)) as QueryResult).affected ?? 0;
}
