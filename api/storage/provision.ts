import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import type { DbConfig } from '../../config/schema';
import { dialectOf, migrate } from './database';

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

async function withAdmin<T>(db: DbConfig, fn: (conn: mysql.Connection, target: MysqlTarget) => Promise<T>): Promise<T | undefined> {
  if (!db.uri.startsWith('mysql://') || !db.admin_uri) return undefined;
  const target = parseMysqlUri(db.uri);
  const conn = await mysql.createConnection({ uri: db.admin_uri, connectTimeout: db.connect_timeout * 1000 });
  try {
    return await fn(conn, target);
  } finally {
    await conn.end();
  }
}

/** Creates the database and the application user if missing; the user may connect from anywhere and from localhost. */
export async function createDatabase(db: DbConfig): Promise<boolean> {
  const done = await withAdmin(db, async (conn, t) => {
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
export async function dropDatabase(db: DbConfig): Promise<void> {
  await withAdmin(db, async (conn, t) => {
    await conn.query(`DROP DATABASE IF EXISTS \`${t.database}\``);
    for (const host of ['%', 'localhost']) await conn.query('DROP USER IF EXISTS ?@?', [t.user, host]);
  });
}

/** Drops every table of the project and migrates from scratch. */
export async function resetTables(ds: DataSource): Promise<void> {
  const mysqlDb = dialectOf(ds) === 'mysql';
  if (mysqlDb) await ds.query('SET FOREIGN_KEY_CHECKS = 0');
  for (const table of ['schedule', 'api_token', 'task_event', 'request_key', 'task_response', 'task', 'endpoint', 'known_endpoint', 'task_output', 'migrations']) await ds.query(`DROP TABLE IF EXISTS ${table}`);
  if (mysqlDb) await ds.query('SET FOREIGN_KEY_CHECKS = 1');
  await migrate(ds);
}

