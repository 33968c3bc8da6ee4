import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import type { Config, DbConfig, MessageQueueConfig } from '../config/schema';
import { dialectOf, migrate } from './database';

/**
 * What `initialize` does: create the database and its user (when the mode configures admin
 * credentials), reset the tables, and reset the RabbitMQ vhost, user and permissions through the
 * management API, as the original's initialize did. The tests use the same functions to clean up.
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
  for (const table of ['task_response', 'task', 'endpoint', 'migrations']) await ds.query(`DROP TABLE IF EXISTS ${table}`);
  if (mysqlDb) await ds.query('SET FOREIGN_KEY_CHECKS = 1');
  await migrate(ds);
}

/** The RabbitMQ management HTTP API, as the `rabbitmq.*` superuser. */
export class RabbitAdmin {
  constructor(private readonly admin: Config['rabbitmq']) {}

  async request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const auth = Buffer.from(`${this.admin.username}:${this.admin.password}`).toString('base64');
    let res: Response;
    try {
      res = await fetch(`${this.admin.apiurl.replace(/\/$/, '')}${path}`, {
        method,
        headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new Error(`RabbitMQ management API at ${this.admin.apiurl} unreachable; is rabbitmq_management enabled?`, { cause: err });
    }
    const text = await res.text();
    if (res.status >= 400 && !(method === 'DELETE' && res.status === 404)) {
      throw new Error(`RabbitMQ management API: ${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    }
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  /** Deletes and recreates the vhost, then creates the application user and its permissions on it. */
  async resetVhost(mq: MessageQueueConfig): Promise<void> {
    const vhost = encodeURIComponent(mq.virtual_host);
    await this.request('DELETE', `/vhosts/${vhost}`);
    await this.request('PUT', `/vhosts/${vhost}`, {});
    const user = encodeURIComponent(mq.username);
    if (mq.username !== this.admin.username) await this.request('PUT', `/users/${user}`, { password: mq.password, tags: '' });
    await this.request('PUT', `/permissions/${vhost}/${user}`, { configure: '.*', write: '.*', read: '.*' });
  }

  /** Deletes the vhost and (unless it is the superuser) the application user. */
  async deleteVhost(mq: MessageQueueConfig): Promise<void> {
    await this.request('DELETE', `/vhosts/${encodeURIComponent(mq.virtual_host)}`);
    if (mq.username !== this.admin.username) await this.request('DELETE', `/users/${encodeURIComponent(mq.username)}`);
  }
}
