import path from 'node:path';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import { DataSource, DataSourceOptions, EntityManager, QueryFailedError } from 'typeorm';
import type { DbConfig, TlsConfig } from '../../config/schema';
import { DatabaseUnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { ACQUIRE_TIMEOUT, boundedMysql2, DbBounds } from './bounded-mysql';
import { readId, readTime } from './sql-values';
import { retrying, withDeadline } from '../../lib/retry';
import { ApiTokenEntity } from './entities/api-token';
import { Initial1763800000000 } from './migrations/1763800000000-initial';
import { BinaryKeys1763900000000 } from './migrations/1763900000000-binary-keys';
import { Operations1764000000000 } from './migrations/1764000000000-operations';
import { ApiTokens1764100000000 } from './migrations/1764100000000-api-tokens';
import { Rollouts1764200000000 } from './migrations/1764200000000-rollouts';
import { Schedules1764300000000 } from './migrations/1764300000000-schedules';
import { BigintIds1764400000000 } from './migrations/1764400000000-bigint-ids';
import { Deadlines1764500000000 } from './migrations/1764500000000-deadlines';
import { ResendBackoff1764600000000 } from './migrations/1764600000000-resend-backoff';
import { EndpointWaiting1764800000000 } from './migrations/1764800000000-endpoint-waiting';
import { RequestFingerprint1764910000000 } from './migrations/1764910000000-request-fingerprint';
import { DropStatusStartIndex1765000000000 } from './migrations/1765000000000-drop-status-start-index';
import { KnownEndpoints1765100000000 } from './migrations/1765100000000-known-endpoints';
import { EndpointLabels1765200000000 } from './migrations/1765200000000-endpoint-labels';
import { Webhooks1765300000000 } from './migrations/1765300000000-webhooks';
import { TaskOutput1765400000000 } from './migrations/1765400000000-task-output';
import { WebhookSecretRotation1765450000000 } from './migrations/1765450000000-webhook-secret-rotation';
import { EndpointStaleNotice1765500000000 } from './migrations/1765500000000-endpoint-stale-notice';
import { WebhookSelector1765520000000 } from './migrations/1765520000000-webhook-selector';
import { TaskNotify1765530000000 } from './migrations/1765530000000-task-notify';
import { DeferredRows1765600000000 } from './migrations/1765600000000-deferred-rows';
import { loadTlsMaterial, tlsRefusalKey } from '../../lib/tls-files';

/**
 * Entities only for the tables a TypeORM repository queries (the API tokens); every other table is read and
 * written by hand-written SQL (row types in ./rows), and the schema of all is the migrations'.
 */
export const ENTITIES = [ApiTokenEntity];
export const MIGRATIONS = [Initial1763800000000, BinaryKeys1763900000000, Operations1764000000000, ApiTokens1764100000000,
  Rollouts1764200000000, Schedules1764300000000, BigintIds1764400000000,
  Deadlines1764500000000, ResendBackoff1764600000000, EndpointWaiting1764800000000,
  RequestFingerprint1764910000000, DropStatusStartIndex1765000000000, KnownEndpoints1765100000000,
  EndpointLabels1765200000000,
  Webhooks1765300000000, TaskOutput1765400000000, WebhookSecretRotation1765450000000, EndpointStaleNotice1765500000000,
  WebhookSelector1765520000000, TaskNotify1765530000000, DeferredRows1765600000000];

export type Dialect = 'mysql' | 'sqlite';

export function dialectOf(ds: DataSource): Dialect {
  return ds.options.type === 'mysql' ? 'mysql' : 'sqlite';
}

/**
 * The database's clock as an SQL expression, in the stored form of times (UTC, milliseconds). Every
 * server-side time and deadline is taken from it, so that API hosts whose clocks disagree judge alike.
 * UTC_TIMESTAMP(3) rather than CURRENT_TIMESTAMP(3): the latter is in the session's time zone, and stored
 * times are UTC. SQLite (standalone) runs inside the one API process, so its clock is that host's.
 */
export function nowSql(dialect: Dialect): string {
  return dialect === 'mysql' ? 'UTC_TIMESTAMP(3)' : `strftime('%Y-%m-%d %H:%M:%f', 'now')`;
}

/** Reads the database's clock (see `nowSql`), within a transaction if given one. */
export async function databaseNow(ds: DataSource, em?: EntityManager): Promise<Date> {
  const sql = `SELECT ${nowSql(dialectOf(ds))} AS now`;
  const rows = await (em ? em.query(sql) : exclusive(ds, () => ds.query(sql))) as { now: unknown }[];
  return readTime(rows[0].now);
}

/** The time limits of each MySQL DataSource's pool (see bounded-mysql). */
const boundsOf = new WeakMap<DataSource, DbBounds>();

/** Every wait on MySQL bounded: a pool connection within connect_timeout, a statement within query_timeout. */
function mysqlBounds(db: DbConfig): DbBounds {
  return { acquireMs: Math.round(db.connect_timeout * 1000), queryMs: Math.round(db.query_timeout * 1000) };
}

/** Builds (does not connect) the DataSource for `manager.db.uri`: `mysql://…` or `sqlite:path`. */
export function createDataSource(db: DbConfig, root: string): DataSource {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, logging: db.verbose, migrationsTransactionMode: 'each' } as const;
  let options: DataSourceOptions;
  let bounds: DbBounds | null = null;
  if (db.uri.startsWith('mysql://')) {
    bounds = mysqlBounds(db);
    options = {
      ...common,
      type: 'mysql',
      url: db.uri,
      timezone: 'Z',
      charset: 'utf8mb4_unicode_ci',
      poolSize: db.pool_size,
      connectTimeout: Math.round(db.connect_timeout * 1000),
      driver: boundedMysql2(bounds),
      connectorPackage: 'mysql2',
      extra: { enableKeepAlive: true, maxIdle: db.pool_size },
      // BIGINT ids as numbers while exact, as strings beyond 2^53 (which readId then refuses), not always strings.
      supportBigNumbers: true, bigNumberStrings: false,
      ...db.tls.enabled ? { ssl: mysqlTls(db.tls, root) } : {},
    };
  } else if (db.uri.startsWith('sqlite:')) {
    const file = path.resolve(root, db.uri.slice('sqlite:'.length));
    mkdirSync(path.dirname(file), { recursive: true });
    options = {
      ...common,
      type: 'better-sqlite3',
      database: file,
      enableWAL: true,
      prepareDatabase: (sqlite: { pragma(s: string): unknown }) => {
        sqlite.pragma('foreign_keys = ON');
        sqlite.pragma('busy_timeout = 5000');
      },
    };
  } else if (db.uri === '') {
    throw new Error('manager.db.uri is not set: the API (the server side) needs a database; endpoint managers do not');
  } else {
    throw new Error(`manager.db.uri must start with mysql:// or sqlite:, got '${db.uri.replace(/:[^:@/]*@/, ':***@')}'`);
  }
  const ds = new DataSource(options);
  if (bounds) boundsOf.set(ds, bounds);
  return ds;
}

/** mysql2's `ssl`: the files, and whether the server's certificate (chain and name) is checked. */
export function mysqlTls(tls: TlsConfig, root: string): Record<string, unknown> {
  return { ...loadTlsMaterial(tls, 'manager.db.tls', root), rejectUnauthorized: tls.verify, verifyIdentity: tls.verify };
}

/** The code of a request's database call that ran out of its time (see `guardDb`). */
const DB_DEADLINE = 'DB_DEADLINE';

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_SERVER_SHUTDOWN', 'ER_CON_COUNT_ERROR',
  'ER_CONNECTION_KILLED', 'CR_SERVER_GONE_ERROR', 'CR_SERVER_LOST', 'ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK',
  ACQUIRE_TIMEOUT, DB_DEADLINE,
]);

function errorCode(err: unknown): string | undefined {
  const e = err instanceof QueryFailedError ? (err.driverError as unknown) : err;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  if (err instanceof Error && /connect ETIMEDOUT|Connection lost|closed state|Pool is closed/i.test(err.message)) return 'ETIMEDOUT';
  return undefined;
}

/** True when an error means the database cannot be reached or must be retried, not that the query is wrong. */
export function isTransientDbError(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && (CONNECTION_ERRORS.has(code) || code.startsWith('SQLITE_BUSY'));
}

export function isDuplicateKey(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** How long each database call of an HTTP request may take, in ms (set per request, see `limitDbCalls`). */
const callLimit = new AsyncLocalStorage<number>();

/** Runs `next` (a request's handling) with each of its `guardDb` calls bounded to `ms`. */
export function limitDbCalls<T>(ms: number, next: () => Promise<T>): Promise<T> {
  return callLimit.run(ms, next);
}

/** `p`, or past `ms` an error with the code that isTransientDbError knows (so the caller answers 503). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return withDeadline(p, ms, () => Object.assign(new Error(`no answer from the database within ${ms} ms`), { code: DB_DEADLINE }));
}

/**
 * Runs `fn`, turning "cannot reach the database" into a 503-class error. Within a request (see
 * `limitDbCalls`) it also gives up after the request's limit: the pool's own limits end each statement,
 * but a call may be several statements, or wait behind a batch of other callers' (the Batcher). What it
 * started goes on in the background until those limits end it; a task whose insert commits after all
 * stays CREATED and the resend job sends it.
 */
export async function guardDb<T>(fn: () => Promise<T>): Promise<T> {
  const limit = callLimit.getStore();
  try {
    if (limit === undefined) return await fn();
    const p = fn();
    // The answer may come after the caller gave up: nobody waits for its error any more.
    p.catch(() => undefined);
    return await within(p, limit);
  } catch (err) {
    if (isTransientDbError(err)) throw new DatabaseUnavailableError({ cause: err });
    throw err;
  }
}

/** Applies pending migrations; on MySQL under a named lock so several processes may start at once. */
export async function migrate(ds: DataSource): Promise<void> {
  if (dialectOf(ds) !== 'mysql') {
    await ds.runMigrations();
    return;
  }
  const bounds = boundsOf.get(ds);
  const queryMs = bounds?.queryMs ?? 0;
  // No statement limit meanwhile (nothing else runs on this DataSource until it is migrated).
  if (bounds) bounds.queryMs = 0;
  const runner = ds.createQueryRunner();
  try {
    // A migration may rebuild a large table: wait as long as it takes rather than run it a second time.
    const [lock] = await runner.query(`SELECT GET_LOCK('tasker_migrations', 600) AS got`) as { got: number | null }[];
    if (Number(lock?.got) !== 1) throw new Error('another process has been migrating the database for 10 minutes; not migrating beside it');
    await ds.runMigrations();
  } finally {
    await runner.query(`SELECT RELEASE_LOCK('tasker_migrations')`).catch(() => undefined);
    await runner.release();
    if (bounds) bounds.queryMs = queryMs;
  }
}

const FATAL_CONNECT = new Set(['ER_ACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_DBACCESS_DENIED_ERROR']);

/**
 * Connects and migrates, waiting (with backoff) while the server is unreachable so that a process may
 * start before its database. Wrong credentials or a missing database fail at once.
 */
export async function openDatabase(make: () => DataSource, log: Logger): Promise<DataSource> {
  const fatal = (err: unknown): boolean => FATAL_CONNECT.has(errorCode(err) ?? '');
  try {
    return await retrying(async () => {
      const ds = make();
      try {
        await ds.initialize();
        await migrate(ds);
        return ds;
      } catch (err) {
        if (ds.isInitialized) await ds.destroy().catch(() => undefined);
        else await ds.driver.disconnect().catch(() => undefined);
        throw err;
      }
    }, {
      base: 200, max: 5000, retryIf: (err) => !fatal(err) && isTransientDbError(err),
      onRetry: (err, attempt) => { if (attempt === 0) log.warn({ err }, 'database unavailable, waiting for it'); },
    });
  } catch (err) {
    if (fatal(err)) throw new Error(`cannot use the database (${errorCode(err)}); run \`npm run initialize\` for this mode first`, { cause: err });
    const key = tlsRefusalKey(err, 'manager.db.tls');
    if (key) throw new Error(`TLS to the database failed: ${(err as Error).message}; check ${key}`, { cause: err });
    throw err;
  }
}

const consecutive = new WeakMap<DataSource, Promise<boolean>>();

/**
 * Whether the ids one multi-row INSERT generates are consecutive, so that they follow from the first
 * one: InnoDB's auto-increment lock modes 0 and 1 (MariaDB's default) and SQLite; not mode 2 (MySQL 8's
 * default), where they are read back.
 */
export function insertIdsAreConsecutive(ds: DataSource, em: EntityManager): Promise<boolean> {
  let known = consecutive.get(ds);
  if (!known) {
    known = dialectOf(ds) === 'mysql'
      ? em.query('SELECT @@innodb_autoinc_lock_mode AS mode').then((rows: { mode: unknown }[]) => Number(rows[0]?.mode) !== 2)
      : Promise.resolve(true);
    consecutive.set(ds, known);
  }
  return known;
}

/** Runs an INSERT of `count` rows; returns the id of the first one if the ids are consecutive, else null. */
export async function insertRows(ds: DataSource, em: EntityManager, sql: string, params: unknown[], count: number): Promise<number | null> {
  const runner = em.queryRunner;
  if (!runner) throw new Error('insertRows needs a transaction');
  const result = await runner.query(sql, params, true) as { raw: unknown };
  if (!(await insertIdsAreConsecutive(ds, em))) return null;
  // MySQL answers the first generated id, SQLite the last.
  return dialectOf(ds) === 'mysql' ? readId((result.raw as { insertId: unknown }).insertId) : readId(result.raw) - count + 1;
}

const sqliteQueues = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs `fn` alone on an SQLite DataSource. SQLite has one connection that every caller shares: without
 * this, the statements of one flow would land inside another flow's open transaction (and be rolled
 * back with it). MySQL has a pool, so `fn` runs at once. `fn` must not call `exclusive` again.
 */
export function exclusive<T>(ds: DataSource, fn: () => Promise<T>): Promise<T> {
  if (dialectOf(ds) === 'mysql') return fn();
  const previous = sqliteQueues.get(ds) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  sqliteQueues.set(ds, run.catch(() => undefined));
  return run;
}

const DEADLOCK = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

/** Pool connections whose session runs READ COMMITTED already: set once per connection, not per transaction. */
const readCommittedSessions = new WeakSet<object>();

async function readCommitted<T>(ds: DataSource, fn: (em: EntityManager) => Promise<T>): Promise<T> {
  const runner = ds.createQueryRunner();
  try {
    const conn = await runner.connect() as object;
    if (!readCommittedSessions.has(conn)) {
      await runner.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
      readCommittedSessions.add(conn);
    }
    await runner.startTransaction();
    try {
      const result = await fn(runner.manager);
      await runner.commitTransaction();
      return result;
    } catch (err) {
      await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  } finally {
    await runner.release();
  }
}

/**
 * A transaction. On MySQL it runs READ COMMITTED (no gap locks between concurrent batches) and is
 * retried when InnoDB picks it as a deadlock victim (it was rolled back, so running it again is safe);
 * on SQLite it is serialised with every other database use.
 */
export async function transaction<T>(ds: DataSource, fn: (em: EntityManager) => Promise<T>): Promise<T> {
  if (dialectOf(ds) !== 'mysql') return exclusive(ds, () => ds.transaction(fn));
  return retrying(() => readCommitted(ds, fn), {
    tries: 5, retryIf: (err) => DEADLOCK.has(errorCode(err) ?? ''), delay: (attempt) => Math.random() * 10 * (attempt + 1),
  });
}
