import type { DataSource, EntityManager, QueryResult } from 'typeorm';
import { ConflictError } from '../../lib/errors';
import { dialectOf, exclusive, isDuplicateKey, transaction } from './database';
import type { Schedule } from './rows';
import { readId, readJson, readOptionalTime, readTime, sqlTime, writeJson } from './sql-values';

export type { Schedule } from './rows';

export type NewSchedule = Omit<Schedule, 'id' | 'last_fire_time' | 'last_task_identifier' | 'last_error' | 'updated_time'>;

/** What a firing changes: the row advances only if no other instance (or an edit) advanced it first. */
export interface Fired {
  id: number;
  /** The next_fire_time the firing read: the guard. */
  scheduled: Date;
  next: Date | null;
  taskIdentifier: string | null;
  error: string | null;
}

const COLUMNS = 'id, name, task_type, cron, every, timezone, payload, endpoints, selector, rollout, paused, anchor_time, next_fire_time, last_fire_time, '
  + 'last_task_identifier, last_error, created_by, created_time, updated_time';

type Row = Record<string, unknown>;

function fromRow(r: Row): Schedule {
  return {
    id: readId(r.id), name: String(r.name), task_type: String(r.task_type),
    cron: r.cron === null ? null : String(r.cron), every: r.every === null ? null : String(r.every), timezone: String(r.timezone),
    payload: readJson(r.payload), endpoints: readJson(r.endpoints), selector: r.selector === null || r.selector === undefined ? null : String(r.selector),
    rollout: readJson(r.rollout), paused: Number(r.paused) === 1,
    anchor_time: readTime(r.anchor_time), next_fire_time: readOptionalTime(r.next_fire_time), last_fire_time: readOptionalTime(r.last_fire_time),
    last_task_identifier: r.last_task_identifier === null ? null : String(r.last_task_identifier),
    last_error: r.last_error === null ? null : String(r.last_error), created_by: r.created_by === null ? null : String(r.created_by),
    created_time: readTime(r.created_time), updated_time: readTime(r.updated_time),
  };
}

const optionalTime = (d: Date | null): string | null => (d === null ? null : sqlTime(d));

/** The schedules, as stored (raw SQL for MySQL and SQLite). */
export class ScheduleStore {
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  private query<T = Row[]>(sql: string, params: unknown[] = []): Promise<T> {
    return exclusive(this.ds, () => this.ds.query(sql, params) as Promise<T>);
  }

  async create(s: NewSchedule): Promise<Schedule> {
    try {
      await this.query(
        `INSERT INTO schedule (name, task_type, cron, every, timezone, payload, endpoints, selector, rollout, paused, anchor_time, next_fire_time,
           created_by, created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [s.name, s.task_type, s.cron, s.every, s.timezone, writeJson(s.payload), writeJson(s.endpoints), s.selector, writeJson(s.rollout), s.paused ? 1 : 0,
          sqlTime(s.anchor_time), optionalTime(s.next_fire_time), s.created_by, sqlTime(s.created_time), sqlTime(s.created_time)],
      );
    } catch (err) {
      if (isDuplicateKey(err)) throw new ConflictError('schedule_exists', `a schedule named '${s.name}' exists`);
      throw err;
    }
    return (await this.find(s.name)) as Schedule;
  }

  async find(name: string): Promise<Schedule | null> {
    const rows = await this.query(`SELECT ${COLUMNS} FROM schedule WHERE name = ?`, [name]);
    return rows.length ? fromRow(rows[0]) : null;
  }

  async list(): Promise<Schedule[]> {
    return (await this.query(`SELECT ${COLUMNS} FROM schedule ORDER BY name`)).map(fromRow);
  }

  /** Replaces the definition and the next firing; false when the schedule is gone. */
  async update(s: Schedule, now: Date): Promise<boolean> {
    const changed = await this.change(
      `UPDATE schedule SET task_type = ?, cron = ?, every = ?, timezone = ?, payload = ?, endpoints = ?, selector = ?, rollout = ?, paused = ?, anchor_time = ?,
         next_fire_time = ?, updated_time = ? WHERE id = ?`,
      [s.task_type, s.cron, s.every, s.timezone, writeJson(s.payload), writeJson(s.endpoints), s.selector, writeJson(s.rollout), s.paused ? 1 : 0,
        sqlTime(s.anchor_time), optionalTime(s.next_fire_time), sqlTime(now), s.id],
    );
    return changed > 0;
  }

  async delete(id: number): Promise<boolean> {
    return (await this.change('DELETE FROM schedule WHERE id = ?', [id])) > 0;
  }

  /**
   * Hands the schedules due at `now` to `fire`, and records what it answers. On MySQL the rows stay
   * locked (SKIP LOCKED) while `fire` runs, so another instance takes other schedules meanwhile; on
   * SQLite, one process, `fire` runs outside any transaction (it creates tasks, which takes the one
   * connection). Either way the row advances only from the next_fire_time that was read.
   */
  async fireDue(now: Date, limit: number, fire: (s: Schedule) => Promise<Fired>): Promise<number> {
    const select = `SELECT ${COLUMNS} FROM schedule WHERE next_fire_time <= ? ORDER BY next_fire_time LIMIT ${Math.floor(limit)}`;
    if (this.mysql) {
      return transaction(this.ds, async (em) => {
        const rows = (await em.query(`${select} FOR UPDATE SKIP LOCKED`, [sqlTime(now)]) as Row[]).map(fromRow);
        for (const s of rows) await this.advance(em, await fire(s), now);
        return rows.length;
      });
    }
    const rows = (await this.query(select, [sqlTime(now)])).map(fromRow);
    for (const s of rows) {
      const fired = await fire(s);
      await exclusive(this.ds, () => this.advance(this.ds.manager, fired, now));
    }
    return rows.length;
  }

  private async advance(em: EntityManager, f: Fired, now: Date): Promise<void> {
    await em.query(
      `UPDATE schedule SET next_fire_time = ?, last_fire_time = ?, last_task_identifier = COALESCE(?, last_task_identifier), last_error = ?,
         updated_time = ? WHERE id = ? AND next_fire_time = ?`,
      [optionalTime(f.next), sqlTime(f.scheduled), f.taskIdentifier, f.error, sqlTime(now), f.id, sqlTime(f.scheduled)],
    );
  }

  /** Runs a statement; answers how many rows it changed. */
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

}
