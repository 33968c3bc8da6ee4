import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import type { DbConfig } from '../../config/schema';
import { dialectOf, migrate, mysqlTls } from './database';

/**
 * The database part of `initialize`: create the database and its user (when the mode configures admin
 * credentials) and reset the tables. The tests use the same functions to clean up.
 */

const SQL_NAME = /^[A-Za-z0-9_]{1,64}$/;

export interface MysqlTarget {
  user: string;
  password: string;
  host: string;
  port: number;
  database: string;
}

export function parseMysqlUri(uri: string): MysqlTarget {
  const u = new URL(uri);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(u.username);
  for (const [what, name] of [['database', database], ['user', user]]) {
    if (!SQL_NAME.test(name)) throw new Error(`manager.db.uri: ${what} name '${name}' must be 1-64 of A-Z a-z 0-9 _`);
  }
  return { user, password: decodeURIComponent(u.password), host: u.hostname, port: Number(u.port || 3306), database };
}

/** The database's TLS, for the connections made here as for the API's. */
const tlsOf = (db: DbConfig, root: string): { ssl?: Record<string, unknown> } => (db.tls.enabled ? { ssl: mysqlTls(db.tls, root) } : {});

async function withAdmin<T>(db: DbConfig, root: string, fn: (conn: mysql.Connection, target: MysqlTarget) => Promise<T>): Promise<T | undefined> {
  if (!db.uri.startsWith('mysql://') || !db.admin_uri) return undefined;
  const target = parseMysqlUri(db.uri);
  const conn = await mysql.createConnection({ uri: db.admin_uri, connectTimeout: db.connect_timeout * 1000, ...tlsOf(db, root) });
  try {
    return await fn(conn, target);
  } finally {
    await conn.end();
  }
}

/** Creates the database and the application user if missing; the user may connect from anywhere and from localhost. */
export async function createDatabase(db: DbConfig, root: string): Promise<boolean> {
  const done = await withAdmin(db, root, async (conn, t) => {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${t.database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    for (const host of ['%', 'localhost']) {
      await conn.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [t.user, host, t.password]);
      await conn.query('ALTER USER ?@? IDENTIFIED BY ?', [t.user, host, t.password]);
      await conn.query(`GRANT ALL PRIVILEGES ON \`${t.database}\`.* TO ?@?`, [t.user, host]);
    }
    return true;
  });
  return done === true;
}

/** Drops the database and the application user (test clean-up). */
export async function dropDatabase(db: DbConfig, root: string): Promise<void> {
  await withAdmin(db, root, async (conn, t) => {
    await conn.query(`DROP DATABASE IF EXISTS \`${t.database}\``);
    for (const host of ['%', 'localhost']) await conn.query('DROP USER IF EXISTS ?@?', [t.user, host]);
  });
}

/**
 * What `initialize --teardown` removes of the database: with MySQL the database and its application user
 * (the admin credentials are needed), with SQLite the file and its journal.
 */
export async function removeDatabase(db: DbConfig, root: string): Promise<void> {
  if (db.uri.startsWith('sqlite:')) {
    const file = path.resolve(root, db.uri.slice('sqlite:'.length));
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
    return;
  }
  if (!db.admin_uri) throw new Error('manager.db.admin_uri is not set: removing the database and its user needs the administrator\'s credentials');
  await dropDatabase(db, root);
}

/** Every table of the project: what a reset drops. */
export const PROJECT_TABLES: readonly string[] = Object.freeze(['endpoint_stale_notice', 'webhook_delivery', 'webhook', 'schedule', 'api_token', 'task_event', 'request_key', 'task_response', 'task', 'endpoint', 'known_endpoint', 'task_output', 'migrations']);

/** What a reset of the tables would delete: the project's tables that exist, and how many tasks they hold. */
export interface ExistingData {
  tables: string[];
  tasks: number;
}

/**
 * The project's tables in the mode's database, looked at without changing anything (and without the
 * retries of the API's start: a database or user that does not exist yet simply holds nothing).
 */
export async function existingData(db: DbConfig, root: string): Promise<ExistingData> {
  if (db.uri.startsWith('sqlite:')) return existingSqlite(path.resolve(root, db.uri.slice('sqlite:'.length)));
  const target = parseMysqlUri(db.uri);
  const via = new URL(db.admin_uri || db.uri);
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({
      host: via.hostname, port: Number(via.port || 3306), user: decodeURIComponent(via.username), password: decodeURIComponent(via.password),
      connectTimeout: db.connect_timeout * 1000, ...tlsOf(db, root),
    });
  } catch (err) {
    // The application user does not exist yet, so neither does its data.
    if ((err as { code?: string }).code === 'ER_ACCESS_DENIED_ERROR' && !db.admin_uri) return { tables: [], tasks: 0 };
    throw new Error(`could not look at the database at ${via.hostname}:${via.port || 3306}`, { cause: err });
  }
  try {
    const [rows] = await conn.query('SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [target.database]);
    const tables = (rows as { name: string }[]).map((r) => r.name).filter((n) => PROJECT_TABLES.includes(n));
    if (!tables.includes('task')) return { tables, tasks: 0 };
    const [count] = await conn.query(`SELECT COUNT(*) AS n FROM \`${target.database}\`.task`);
    return { tables, tasks: Number((count as { n: number }[])[0].n) };
  } finally {
    await conn.end();
  }
}

function existingSqlite(file: string): ExistingData {
  if (!existsSync(file)) return { tables: [], tasks: 0 };
  const sqlite = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    const tables = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[])
      .map((r) => r.name).filter((n) => PROJECT_TABLES.includes(n));
    const tasks = tables.includes('task') ? Number((sqlite.prepare('SELECT COUNT(*) AS n FROM task').get() as { n: number }).n) : 0;
    return { tables, tasks };
  } finally {
    sqlite.close();
  }
}

/** Drops every table of the project and migrates from scratch. */
export async function resetTables(ds: DataSource): Promise<void> {
  const mysqlDb = dialectOf(ds) === 'mysql';
  if (mysqlDb) await ds.query('SET FOREIGN_KEY_CHECKS = 0');
  for (const table of PROJECT_TABLES) await ds.query(`DROP TABLE IF EXISTS ${table}`);
  if (mysqlDb) await ds.query('SET FOREIGN_KEY_CHECKS = 1');
  await migrate(ds);
}

