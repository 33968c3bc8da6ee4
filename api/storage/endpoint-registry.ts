import type { DataSource, EntityManager } from 'typeorm';
import type { Facts, Labels } from '../../protocol/labels';
import type { PresenceEvent } from '../../protocol/wire';
import { databaseNow, dialectOf, exclusive } from './database';
import type { RegisteredEndpoint } from './rows';
import { readJson, readOptionalTime, readTime, sqlTime } from './sql-values';

const FACT_FIELDS = ['hostname', 'os', 'arch', 'version', 'task_types', 'handler_kinds'] as const;

/** The facts tasker knows of, as JSON; fields it does not know are dropped, so that a row stays small. */
function factsJson(facts: PresenceEvent['facts']): string | null {
  if (!facts) return null;
  const kept: Record<string, unknown> = {};
  for (const f of FACT_FIELDS) if (facts[f] !== undefined) kept[f] = facts[f];
  return JSON.stringify(kept);
}

export type { RegisteredEndpoint } from './rows';

/**
 * Which endpoints serve which task type, kept from their register and heartbeat events. A task that
 * lists no endpoints is expected from those registered for its type and heard from recently.
 */
export class EndpointRegistry {
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /**
   * Registers or refreshes the endpoints of these events, within the caller's transaction. A heartbeat
   * counts from when it is stored (`now`, the database's clock): the endpoint's own clock decides nothing.
   */
  async record(em: EntityManager, events: PresenceEvent[], now: Date): Promise<void> {
    const latest = new Map<string, { type: string; name: string; time: number; waiting: string | null; labels: string | null; facts: string | null }>();
    for (const e of events) {
      const time = now.getTime();
      for (const type of new Set(e.task_types)) {
        const key = `${type}\u0000${e.endpoint}`;
        if ((latest.get(key)?.time ?? -Infinity) < time) {
          latest.set(key, {
            type, name: e.endpoint, time, waiting: e.waiting_since === undefined ? null : sqlTime(new Date(e.waiting_since)),
            labels: e.labels === undefined ? null : JSON.stringify(e.labels), facts: factsJson(e.facts),
          });
        }
      }
    }
    if (latest.size === 0) return;
    // One order for every writer, so that two collectors never deadlock on these rows.
    const rows = [...latest.values()].sort((a, b) => (a.type === b.type ? (a.name < b.name ? -1 : 1) : (a.type < b.type ? -1 : 1)));
    // `waiting_since`, labels and facts as the newest heartbeat says (assigned before last_heartbeat: MySQL
    // reads updated columns).
    const newer = (column: string): string => (this.mysql
      ? `${column} = IF(VALUES(last_heartbeat) >= last_heartbeat, VALUES(${column}), ${column})`
      : `${column} = CASE WHEN excluded.last_heartbeat >= last_heartbeat THEN excluded.${column} ELSE ${column} END`);
    const upsert = this.mysql
      ? `ON DUPLICATE KEY UPDATE ${newer('waiting_since')}, ${newer('labels')}, ${newer('facts')},
         last_heartbeat = GREATEST(last_heartbeat, VALUES(last_heartbeat))`
      : `ON CONFLICT (task_type, name) DO UPDATE SET ${newer('waiting_since')}, ${newer('labels')}, ${newer('facts')},
         last_heartbeat = MAX(last_heartbeat, excluded.last_heartbeat)`;
    await em.query(`INSERT INTO endpoint (task_type, name, first_seen, last_heartbeat, waiting_since, labels, facts) VALUES ${rows.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')} ${upsert}`,
      rows.flatMap((r) => [r.type, r.name, sqlTime(new Date(r.time)), sqlTime(new Date(r.time)), r.waiting, r.labels, r.facts]));
  }

  /**
   * The column's value in the endpoint's row with the newest heartbeat ('' for none): a row of a type it
   * no longer serves keeps what an earlier life of it said. Times are stored as 23 characters
   * (`YYYY-MM-DD HH:MM:SS.mmm`), so the newest row's value is what follows them in the greatest concatenation.
   */
  private newest(column: 'labels' | 'facts'): string {
    return this.mysql
      ? `SUBSTRING(MAX(CONCAT(last_heartbeat, COALESCE(${column}, ''))), 24)`
      : `substr(MAX(last_heartbeat || COALESCE(${column}, '')), 24)`;
  }

  private async select(where: string, params: unknown[], limit: number): Promise<RegisteredEndpoint[]> {
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT name, MIN(first_seen) AS first_seen, MAX(last_heartbeat) AS last_heartbeat, MAX(waiting_since) AS waiting_since, GROUP_CONCAT(task_type) AS task_types,
       ${this.newest('labels')} AS labels, ${this.newest('facts')} AS facts
       FROM endpoint WHERE ${where} GROUP BY name ORDER BY name LIMIT ${Math.floor(limit)}`, params));
    return rows.map((r) => ({
      name: String(r.name), task_types: String(r.task_types).split(',').sort(),
      first_seen: readTime(r.first_seen), last_heartbeat: readTime(r.last_heartbeat), waiting_since: readOptionalTime(r.waiting_since ?? null),
      labels: readJson<Labels | null>(r.labels || null) ?? {}, facts: readJson<Facts | null>(r.facts || null) ?? {},
    }));
  }

  /** Registered endpoints after `afterName`, by name, with all the task types they serve. */
  list(afterName: string, limit: number): Promise<RegisteredEndpoint[]> {
    return this.select('name > ?', [afterName], limit);
  }

  /**
   * Every registered endpoint (at most `limit`), by name: what a selector is matched against. Labels
   * live in JSON, so the match is made here rather than in SQL.
   */
  all(limit: number): Promise<RegisteredEndpoint[]> {
    return this.select('1 = 1', [], limit);
  }

  /**
   * The endpoints of the type with a heartbeat within the last `seconds`, by name, with their labels and
   * facts as stored (JSON text, null for none): one row each (a type's row is the endpoint's own), read
   * as they are, since a selector over a thousand endpoints is resolved on every POST that gives one.
   */
  async liveLabels(taskType: string, seconds: number): Promise<{ name: string; labels: string | null; facts: string | null }[]> {
    const since = new Date((await databaseNow(this.ds)).getTime() - seconds * 1000);
    const rows: Record<string, unknown>[] = await exclusive(this.ds, () => this.ds.query(
      'SELECT name, labels, facts FROM endpoint WHERE task_type = ? AND last_heartbeat >= ? ORDER BY name', [taskType, sqlTime(since)]));
    return rows.map((r) => ({ name: String(r.name), labels: r.labels === null || r.labels === undefined ? null : String(r.labels), facts: r.facts === null || r.facts === undefined ? null : String(r.facts) }));
  }

  async get(name: string): Promise<RegisteredEndpoint | null> {
    return (await this.select('name = ?', [name], 1))[0] ?? null;
  }

  /** The database's clock, which heartbeats are stamped with. */
  now(): Promise<Date> {
    return databaseNow(this.ds);
  }

  /**
   * Those of `names` that are not in the inventory: never registered (for any type) and not added with
   * `npm run endpoint -- add`. One statement, however many names a task lists.
   */
  async unknown(names: readonly string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const marks = names.map(() => '?').join(', ');
    const rows: { name: string }[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT DISTINCT name FROM endpoint WHERE name IN (${marks}) UNION SELECT name FROM known_endpoint WHERE name IN (${marks})`, [...names, ...names]));
    const known = new Set(rows.map((r) => String(r.name)));
    return names.filter((n) => !known.has(n));
  }

  /** Of `types`, those no registered endpoint serves, if any endpoint registered at all (else: nothing known). */
  async unserved(types: readonly string[]): Promise<string[]> {
    const rows: { task_type: string }[] = await exclusive(this.ds, () => this.ds.query('SELECT DISTINCT task_type FROM endpoint'));
    if (rows.length === 0) return [];
    const served = new Set(rows.map((r) => String(r.task_type)));
    return types.filter((t) => !served.has(t));
  }

  /** Those of `names` that registered, but for other task types than `type` only. One statement. */
  async notServing(type: string, names: readonly string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const rows: { name: string }[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT name FROM endpoint WHERE name IN (${names.map(() => '?').join(', ')}) GROUP BY name
       HAVING SUM(CASE WHEN task_type = ? THEN 1 ELSE 0 END) = 0`, [...names, type]));
    const other = new Set(rows.map((r) => String(r.name)));
    return names.filter((n) => other.has(n));
  }

  /** Adds a name to the inventory before its endpoint ever registers (`npm run endpoint -- add`); true if it was new. */
  async add(name: string): Promise<boolean> {
    if ((await this.unknown([name])).length === 0) return false;
    const now = sqlTime(await databaseNow(this.ds));
    await exclusive(this.ds, () => this.ds.query(this.mysql
      ? 'INSERT IGNORE INTO known_endpoint (name, added_time) VALUES (?, ?)'
      : 'INSERT OR IGNORE INTO known_endpoint (name, added_time) VALUES (?, ?)', [name, now]));
    return true;
  }

  /** Takes the name out of the registry and the inventory; true if it was in either. */
  async remove(name: string): Promise<boolean> {
    const was = (await this.unknown([name])).length === 0;
    await exclusive(this.ds, async () => {
      await this.ds.query('DELETE FROM endpoint WHERE name = ?', [name]);
      await this.ds.query('DELETE FROM known_endpoint WHERE name = ?', [name]);
    });
    return was;
  }

  /** Registered endpoints whose latest heartbeat (any type) is older than `cutoff`, oldest first. */
  async silentSince(cutoff: Date, limit: number): Promise<string[]> {
    const rows: { name: string }[] = await exclusive(this.ds, () => this.ds.query(
      `SELECT name FROM endpoint GROUP BY name HAVING MAX(last_heartbeat) < ? ORDER BY MAX(last_heartbeat) LIMIT ${Math.floor(limit)}`, [sqlTime(cutoff)]));
    return rows.map((r) => String(r.name));
  }

  /** Endpoint names of the type with a heartbeat within the last `seconds` (on the database's clock), sorted. */
  async activeFor(taskType: string, seconds: number): Promise<string[]> {
    const since = new Date((await databaseNow(this.ds)).getTime() - seconds * 1000);
    const rows: { name: string }[] = await exclusive(this.ds, () => this.ds.query(
      'SELECT name FROM endpoint WHERE task_type = ? AND last_heartbeat >= ? ORDER BY name', [taskType, sqlTime(since)]));
    return rows.map((r) => r.name);
  }
}
