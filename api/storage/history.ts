import type { DataSource, EntityManager } from 'typeorm';
import { dialectOf, exclusive, insertRows } from './database';
import { type EventKind, webhookEventOf } from '../lifecycle/states';
import type { StoredEvent } from './rows';
import { readId, readJson, readTime, sqlTime, writeJson } from './sql-values';
import { servedFrontier, withoutUncommitted } from './uncommitted';
import type { OutboxEvent, WebhookStore } from './webhook-store';

/** What a per-endpoint change records of each endpoint it concerns. */
export interface EndpointChange {
  endpoint: string;
  round: number;
  attempt?: number;
  errnr?: number;
  errmsg?: string | null;
  /** A retry: the result the endpoint had before (it stays here, in the history). */
  previous?: unknown;
}

/**
 * A change to record. `task` names the task it belongs to (its type and identifier are shown with it);
 * `endpoints` for the changes of endpoints (received, finished, retried), which a transaction records
 * as one event per task and kind, however many endpoints it concerns.
 */
export interface NewEvent {
  task: { id: number; type: string; identifier: string };
  kind: EventKind;
  time: Date;
  endpoints?: EndpointChange[];
  detail?: Record<string, unknown>;
  actor?: string | null;
}

export type { StoredEvent } from './rows';

/** Called with the events of a transaction once it committed (the server side turns them into notices). */
export type Announce = (events: StoredEvent[]) => void;

const COLUMNS = 'e.id, e.task_id, t.type, t.identifier, e.time, e.kind, e.detail, e.actor';
const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

function hydrate(r: Record<string, unknown>): StoredEvent {
  return {
    id: readId(r.id), task_id: readId(r.task_id), type: String(r.type), identifier: String(r.identifier),
    time: readTime(r.time).toISOString(), kind: String(r.kind), detail: readJson<Record<string, unknown> | null>(r.detail),
    actor: r.actor === null ? null : String(r.actor),
  };
}

function detailOf(e: NewEvent): Record<string, unknown> | null {
  if (!e.endpoints && !e.detail) return null;
  return { ...e.detail, ...(e.endpoints ? { endpoints: e.endpoints } : {}) };
}

/**
 * The history of tasks: every change, in order, written in the transaction that makes it. Per task the
 * order of ids is the order of the changes, since every writer holds the task's row lock.
 */
export class History {
  /**
   * The webhook outbox: while some subscription is enabled, the events of each transaction that a
   * subscription may want are written to it in that same transaction (one more statement).
   */
  webhooks: WebhookStore | null = null;

  constructor(private readonly ds: DataSource) {}

  /** Records events within the caller's transaction; returns them with their ids. */
  async append(em: EntityManager, events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const details = events.map(detailOf);
    const rows = events.map((e, i) => [e.task.id, sqlTime(e.time), e.kind, details[i] === null ? null : writeJson(details[i]), e.actor ?? null]);
    const first = await insertRows(this.ds, em, this.insertSql(rows.length), rows.flat(), events.length);
    let ids: number[];
    if (first !== null) {
      ids = events.map((_e, i) => first + i);
    } else {
      // Nobody else writes events of these tasks while this transaction holds their locks.
      const taskIds = [...new Set(events.map((e) => e.task.id))];
      const back: { id: unknown }[] = await em.query(
        `SELECT id FROM task_event WHERE task_id IN (${marks(taskIds.length)}) ORDER BY id DESC LIMIT ${events.length}`, taskIds);
      ids = back.map((r) => readId(r.id)).reverse();
    }
    if (this.webhooks?.active || this.webhooks?.notifying) {
      const out = events.flatMap((e, i): OutboxEvent[] => {
        const event = webhookEventOf(e.kind, e.endpoints);
        return event === null ? [] : [{ taskId: e.task.id, eventId: ids[i], event, taskType: e.task.type, identifier: e.task.identifier, time: e.time }];
      });
      await this.webhooks.enqueue(em, out);
    }
    return events.map((e, i) => ({
      id: ids[i], task_id: e.task.id, type: e.task.type, identifier: e.task.identifier, time: e.time.toISOString(), kind: e.kind,
      detail: details[i], actor: e.actor ?? null,
    }));
  }

  /**
   * The INSERT of `n` events. On MySQL an INSERT … SELECT, whose ids are taken under the table's AUTO-INC
   * lock until the statement ends, so that each id's row is in the table before any later id is taken:
   * what lets readers of every task's events know which ids are still uncommitted (see uncommitted.ts).
   * The ordinal keeps the rows (and so their ids) in the order given.
   */
  private insertSql(n: number): string {
    const head = 'INSERT INTO task_event (task_id, time, kind, detail, actor)';
    if (dialectOf(this.ds) !== 'mysql') return `${head} VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?)').join(', ')}`;
    const selects = Array.from({ length: n }, (_v, i) => i === 0
      ? 'SELECT 0 AS n, ? AS task_id, ? AS time, ? AS kind, ? AS detail, ? AS actor'
      : `SELECT ${i}, ?, ?, ?, ?, ?`);
    return `${head} SELECT task_id, time, kind, detail, actor FROM (${selects.join(' UNION ALL ')}) AS v ORDER BY n`;
  }

  /** A task's events after `afterId`, oldest first. */
  async forTask(taskId: number, afterId: number, limit: number): Promise<StoredEvent[]> {
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT ${COLUMNS} FROM task_event e JOIN task t ON t.id = e.task_id WHERE e.task_id = ? AND e.id > ? ORDER BY e.id LIMIT ${Math.floor(limit)}`,
      [taskId, afterId]));
    return rows.map(hydrate);
  }

  private async newestId(): Promise<number> {
    const rows: { id: unknown }[] = await exclusive(this.ds, () => this.ds.query('SELECT MAX(id) AS id FROM task_event', []));
    return rows[0]?.id === null || rows[0]?.id === undefined ? 0 : readId(rows[0].id);
  }

  /**
   * Where a stream of every task's events "from now on" starts: after the newest event, or before the
   * oldest recent one whose transaction is still open (see uncommitted.ts).
   */
  async lastId(): Promise<number> {
    return servedFrontier(this.ds, await this.newestId(), async (afterId, upTo) => {
      const rows: { id: unknown }[] = await this.ds.query('SELECT id FROM task_event WHERE id > ? AND id <= ?', [afterId, upTo]);
      return rows.map((r) => readId(r.id));
    });
  }

  /**
   * Every task's events after `afterId` (of one type, if given), oldest first, up to the first one that
   * is not committed yet: none is ever passed over by a reader that goes on from the last one it got.
   * `held` tells that events after the last one returned are waiting for an open transaction.
   */
  async after(afterId: number, type: string | null, limit: number): Promise<{ events: StoredEvent[]; held: boolean }> {
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT ${COLUMNS} FROM task_event e JOIN task t ON t.id = e.task_id WHERE e.id > ?${type ? ' AND t.type = ?' : ''}
       ORDER BY e.id LIMIT ${Math.floor(limit)}`, type ? [afterId, type] : [afterId]));
    return withoutUncommitted(this.ds, afterId, type, rows.map(hydrate));
  }
}
