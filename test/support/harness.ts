import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import BetterSqlite3 from 'better-sqlite3';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import mysql from 'mysql2/promise';
import { loadConfig, projectRoot } from '../../config/loader';
import type { Config } from '../../config/schema';
import { RabbitAdmin } from '../../api/rabbit-admin';
import { mysqlTls } from '../../api/storage/database';
import { dropDatabase } from '../../api/storage/provision';
import { brokerAddresses } from '../../protocol/rabbitmq/hosts';
import { requireServices } from './service-gate';

const ROOT = projectRoot();
const SCRIPTS = path.join(ROOT, 'dist', 'scripts');

export type LogLine = Record<string, unknown>;

/** A real tasker process (api or manager) started from the compiled entry points. */
export class Proc {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: { test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.raw.push(text);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { text };
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /**
   * Resolves when the process reports ready over IPC (as it does to pm2). Generous: a suite may start
   * twenty processes at once on two cores beside others' load, and each loads its modules first.
   */
  waitReady(timeoutMs = 90_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: not ready within ${timeoutMs} ms\n${this.raw.slice(-20).join('\n')}`)), timeoutMs);
      this.child.on('message', (msg) => {
        if (msg === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before it was ready\n${this.raw.slice(-20).join('\n')}`));
      });
    });
  }

  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(test: (l: LogLine) => boolean, timeoutMs = 30_000, what = 'log line'): Promise<LogLine> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.raw.slice(-20).join('\n')}`)), timeoutMs);
      const exit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before ${what}\n${this.raw.slice(-20).join('\n')}`));
      };
      void this.exited.then(exit);
      this.waiters.push({ test, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    });
  }

  /** Sends a signal and waits for the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Ports this process handed out: never handed out twice, even once free again. */
const handedOut = new Set<number>();
/**
 * Below Linux's ephemeral range (32768-60999), where the kernel's own picks for outgoing connections and
 * for `listen(0)` never land: a port found free here stays free until its process binds it. (With
 * `listen(0)` two calls could return the same port, or a client's connection take it in between; a test
 * cluster's node once failed to start with `dist_port_already_used` that way.)
 */
const PORT_RANGE = { low: 20_000, high: 32_000 };
/** Ports of the machine's services in that range (RabbitMQ's distribution port), free while one restarts. */
const RESERVED_PORTS = new Set([25_672]);

function canListen(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const port = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low));
    if (handedOut.has(port) || RESERVED_PORTS.has(port) || !await canListen(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${PORT_RANGE.low}-${PORT_RANGE.high}`);
}

export type Backend = 'rabbitmq' | 'standalone';

/** A stored time as epoch ms: MariaDB's `YYYY-MM-DD hh:mm:ss.fff` (UTC) or SQLite's ISO string. */
export function storedTimeMs(value: unknown): number {
  const text = String(value);
  return Date.parse(text.includes('T') ? text : `${text.replace(' ', 'T')}Z`);
}

export interface EndpointSpec {
  name: string;
  task_types: string[];
  labels?: Record<string, string>;
}

export interface HarnessOptions {
  /** More environment for every process (configuration overrides). */
  env?: NodeJS.ProcessEnv;
  /** Options for node itself, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** RabbitMQ + MariaDB with separate processes (default), or the standalone all-in-one process. */
  backend?: Backend;
  /** Seconds for api.wait_for_endpoints_timeout. */
  waitTimeout?: number;
  /** Seconds for manager.handler_timeout. */
  handlerTimeout?: number;
}

/**
 * One test run's world: its own database, database user, vhost and broker user (named after a unique
 * id), the real processes started against them, and clean-up of all of it.
 */
export class Harness {
  readonly id = `tasker_t${process.pid}_${randomBytes(3).toString('hex')}`;
  env: NodeJS.ProcessEnv = {};
  config!: Config;
  port = 0;
  private readonly procs = new Set<Proc>();
  /** Every process this run started, exited ones too: their output is written to TASKER_TEST_LOGS (a folder) on teardown. */
  private readonly started: Proc[] = [];
  /** Processes started from now on write their stdout (info lines) nowhere: for the bench's large fleets. */
  discardStdout = false;
  /** RabbitMQ users of endpoints made by this run, deleted on teardown (users are broker-wide). */
  private readonly endpointUsers = new Set<string>();
  private sql: mysql.Pool | null = null;
  private sqlite: BetterSqlite3.Database | null = null;
  private tmpDir: string | null = null;
  readonly backend: Backend;

  constructor(private readonly options: HarnessOptions = {}) {
    this.backend = options.backend ?? 'rabbitmq';
  }

  get mode(): string {
    return this.backend === 'standalone' ? 'standalone' : 'test';
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * RabbitMQ: creates the database and vhost with the real `initialize` script. Standalone: a fresh SQLite
   * file. Given the suite's context, a suite that needs RabbitMQ and MariaDB is not run where they cannot
   * be reached (see service-gate).
   */
  async setup(ctx?: Mocha.Context): Promise<void> {
    if (ctx && this.backend === 'rabbitmq') await requireServices(ctx);
    this.port = await freePort();
    const wait = String(this.options.waitTimeout ?? 3);
    const handler = String(this.options.handlerTimeout ?? 5);
    // Suites that list endpoints before (or without) their registration trust names, as before the
    // inventory; the inventory's own suite sets `refuse`, the default.
    const base: NodeJS.ProcessEnv = { ...process.env, TASKER_API_PORT: String(this.port), TASKER_API__UNKNOWN_ENDPOINTS: 'allow' };
    delete base.TASKER_MODE;
    if (this.backend === 'standalone') {
      this.tmpDir = mkdtempSync(path.join(os.tmpdir(), 'tasker-standalone-'));
      this.env = {
        ...base,
        TASKER_MANAGER__DB__URI: `sqlite:${path.join(this.tmpDir, 'tasker.sqlite')}`,
        TASKER_API__WAIT_FOR_ENDPOINTS_TIMEOUT: wait,
        TASKER_API__SWEEP_INTERVAL: '0.25',
        TASKER_MANAGER__HANDLER_TIMEOUT: handler,
        TASKER_MANAGER__HEARTBEAT_INTERVAL: '1',
        TASKER_MANAGER__SHUTDOWN_TIMEOUT: '5',
        TASKER_API__SHUTDOWN_TIMEOUT: '5',
        ...this.options.env,
      };
      this.config = loadConfig({ mode: 'standalone', env: this.env });
      return;
    }
    this.env = { ...base, TASKER_TEST_ID: this.id, TASKER_TEST_WAIT_TIMEOUT: wait, TASKER_TEST_HANDLER_TIMEOUT: handler, ...this.options.env };
    this.config = loadConfig({ mode: 'test', env: this.env });
    const init = this.spawn('initialize', ['initialize.js']);
    const code = await init.exited;
    if (code !== 0) throw new Error(`initialize failed (${code}):\n${init.raw.join('\n')}`);
    const { tls } = this.config.manager.db;
    // A run whose database user requires TLS (the soak's TLS run) is looked at over TLS too.
    this.sql = mysql.createPool({ uri: this.config.manager.db.uri, connectionLimit: 2, dateStrings: true, ...tls.enabled ? { ssl: mysqlTls(tls, projectRoot()) } : {} });
  }

  /**
   * Starts the system with these endpoints: the API and one manager process per endpoint (RabbitMQ),
   * or one all-in-one process running them all (standalone).
   */
  async startSystem(endpoints: EndpointSpec[]): Promise<Proc[]> {
    if (this.backend === 'rabbitmq') {
      return [await this.startApi(), ...await Promise.all(endpoints.map((e) => this.startManager(e.name, e.task_types)))];
    }
    return [await this.startAllInOne(endpoints)];
  }

  /** `npm start`'s process; without a mode it must default to standalone. */
  async startAllInOne(endpoints: EndpointSpec[], withMode = true): Promise<Proc> {
    const extra = { TASKER_MANAGER__ENDPOINTS: JSON.stringify(endpoints) };
    const p = this.spawn('all-in-one', ['start.js'], extra, withMode);
    await p.waitReady();
    return p;
  }

  private spawn(name: string, args: string[], env: NodeJS.ProcessEnv = {}, withMode = true): Proc {
    const mode = withMode ? ['--mode', this.mode] : [];
    const child = spawn(process.execPath, [...this.options.nodeArgs ?? [], path.join(SCRIPTS, args[0]), ...mode, ...args.slice(1)], {
      env: { ...this.env, ...env }, stdio: ['ignore', this.discardStdout ? 'ignore' : 'pipe', 'pipe', 'ipc'],
    });
    const proc = new Proc(name, child);
    this.procs.add(proc);
    this.started.push(proc);
    void proc.exited.then(() => this.procs.delete(proc));
    return proc;
  }

  /** Writes every started process's output to `$TASKER_TEST_LOGS/<run id>/<n>-<name>.log`, for reading a failed run afterwards. */
  private keepLogs(): void {
    const dir = process.env.TASKER_TEST_LOGS;
    if (!dir) return;
    const runDir = path.join(dir, this.id);
    mkdirSync(runDir, { recursive: true });
    this.started.forEach((p, i) => writeFileSync(path.join(runDir, `${i}-${p.name.replace(/[^\w.-]+/g, '_')}.log`), `${p.raw.join('\n')}\n`));
  }

  /** A process that is not one of the project's (an endpoint in another language), stopped with the rest. */
  spawnExternal(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new Proc(name, child);
    this.procs.add(proc);
    this.started.push(proc);
    void proc.exited.then(() => this.procs.delete(proc));
    return proc;
  }

  /** Runs one of the project's commands (`scripts/<script>`) to its end. */
  async runScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
    const p = this.spawn(script, [script, ...args], env);
    const code = await p.exited;
    return { code, output: p.raw.join('\n') };
  }

  /** `npm run token -- create NAME --scope S...`: the token, as printed once. */
  async createToken(name: string, scopes: string[]): Promise<string> {
    const { code, output } = await this.runScript('token.js', ['create', name, ...scopes.flatMap((s) => ['--scope', s])]);
    assert.equal(code, 0, output);
    const token = /tkr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(output)?.[0];
    assert.ok(token, output);
    return token;
  }

  /** `npm run endpoint -- add NAME --password P`: a RabbitMQ user of its own for the endpoint. */
  async addEndpointUser(name: string, password: string): Promise<string> {
    this.endpointUsers.add(name);
    const { code, output } = await this.runScript('endpoint.js', ['add', name, '--password', password]);
    if (code !== 0) throw new Error(`endpoint add ${name} failed (${code}):\n${output}`);
    return output;
  }

  /** An API process; `port` starts a further instance beside the first; `env` is added to the run's environment (e.g. a skewed clock). */
  async startApi(port?: number, env?: Record<string, string>): Promise<Proc> {
    const p = this.spawnApi(port, env);
    await p.waitReady();
    return p;
  }

  /** An API process, not waited for (one that is to fail at start). */
  spawnApi(port?: number, env?: Record<string, string>): Proc {
    return this.spawn(port ? `api ${port}` : 'api', ['api.js'], { ...port ? { TASKER_API_PORT: String(port) } : {}, ...env });
  }

  /**
   * A manager process; the returned Proc may be stopped and the manager started again. It gets no
   * database settings at all: an endpoint manager talks to the broker only.
   */
  spawnManager(endpoint: string | string[], taskTypes: string[] = [], env: NodeJS.ProcessEnv = {}, extraArgs: string[] = []): Proc {
    const names = Array.isArray(endpoint) ? endpoint : [endpoint];
    const args = ['manager.js', ...names.flatMap((n) => ['--endpoint', n]), ...taskTypes.flatMap((t) => ['--tasktype', t]), ...extraArgs];
    return this.spawn(`manager ${names.length > 3 ? `${names[0]}..${names[names.length - 1]}` : names.join(',')}`, args,
      { TASKER_MANAGER__DB__URI: '', TASKER_MANAGER__DB__ADMIN_URI: '', ...env });
  }

  async startManager(endpoint: string | string[], taskTypes: string[] = [], env: NodeJS.ProcessEnv = {}, extraArgs: string[] = []): Promise<Proc> {
    const p = this.spawnManager(endpoint, taskTypes, env, extraArgs);
    await p.waitReady();
    return p;
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    if (this.backend === 'standalone') {
      this.sqlite ??= new BetterSqlite3(this.config.manager.db.uri.slice('sqlite:'.length), { readonly: true, fileMustExist: true });
      return this.sqlite.prepare(sql).all(...params) as T[];
    }
    if (!this.sql) throw new Error('harness not set up');
    const [rows] = await this.sql.query(sql, params);
    return rows as T[];
  }

  async post(type: string, body: unknown, headers: Record<string, string> = {}, port = this.port): Promise<{ status: number; json: any }> {
    const res = await fetch(`http://127.0.0.1:${port}/${type}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  async get(pathname: string): Promise<{ status: number; json: any }> {
    const res = await fetch(`${this.baseUrl}/${pathname}`);
    return { status: res.status, json: await res.json() };
  }

  /** Polls GET until the task reaches one of `statuses`. */
  async waitForStatus(type: string, identifier: string, statuses: string[], timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const { status, json } = await this.get(`${type}/${encodeURIComponent(identifier)}`);
      last = json;
      if (status === 200 && statuses.includes(json.task.status)) return json;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`task ${type}/${identifier} not ${statuses.join('|')} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
  }

  /** A connection as the application user to the first node of `message_queue.hosts` (or `host`) that takes it. */
  private async connectAmqp(): Promise<amqp.ChannelModel> {
    const mq = this.config.manager.message_queue;
    let lastError: unknown;
    for (const { host, port } of brokerAddresses(mq)) {
      try {
        return await amqp.connect({ hostname: host, port, username: mq.username, password: mq.password, vhost: mq.virtual_host }, { timeout: 10_000 });
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** A confirm channel on the run's vhost as the application user, to look at or feed queues directly. */
  async withChannel<T>(fn: (ch: amqp.ConfirmChannel) => Promise<T>): Promise<T> {
    const conn = await this.connectAmqp();
    try {
      const ch = await conn.createConfirmChannel();
      const result = await fn(ch);
      await ch.waitForConfirms();
      return result;
    } finally {
      await conn.close();
    }
  }

  /**
   * The invariants every fault case ends with: every accepted task exists; each reaches DONE; it has
   * exactly one finished response per expected endpoint and none from anyone else; the endpoint queues
   * are empty.
   */
  async checkInvariants(accepted: { type: string; identifier: string }[], queues: string[], timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const ids = new Set(accepted.map((a) => `${a.type}/${a.identifier}`));
    let notDone: { type: string; identifier: string; status: string }[] = [];
    for (;;) {
      const rows = await this.query<{ type: string; identifier: string; status: string }>('SELECT type, identifier, status FROM task');
      const stored = new Set(rows.map((r) => `${r.type}/${r.identifier}`));
      const missing = [...ids].filter((id) => !stored.has(id));
      assert.deepEqual(missing, [], 'accepted tasks missing from the database');
      notDone = rows.filter((r) => ids.has(`${r.type}/${r.identifier}`) && r.status !== 'DONE');
      if (notDone.length === 0) break;
      if (Date.now() > deadline) {
        assert.fail(`${notDone.length} tasks not DONE, e.g. ${await this.explain(notDone.slice(0, 3))}; queues: ${await this.queueCounts(queues)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const wrong = await this.query(`
      SELECT t.id, t.expected_count, COUNT(r.id) AS responses, SUM(r.status = 1) AS finished,
             SUM(JSON_CONTAINS(t.expected_endpoints, JSON_QUOTE(r.endpoint))) AS expected
      FROM task t LEFT JOIN task_response r ON r.task_id = t.id
      WHERE t.status = 'DONE'
      GROUP BY t.id, t.expected_count
      HAVING responses <> t.expected_count OR finished <> t.expected_count OR expected <> t.expected_count`);
    assert.deepEqual(wrong, [], 'tasks without exactly one finished response per expected endpoint');
    // Acks may trail the commit by a moment.
    for (;;) {
      const counts = await this.withChannel((ch) => Promise.all(queues.map(async (q) => (await ch.checkQueue(q)).messageCount)));
      if (counts.every((n) => n === 0)) break;
      if (Date.now() > deadline) assert.fail(`queues not drained: ${queues.map((q, i) => `${q}=${counts[i]}`).join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Tasks with their response rows and history, so that a failed check says where each one stopped. */
  private async explain(tasks: { type: string; identifier: string }[]): Promise<string> {
    const out: unknown[] = [];
    for (const t of tasks) {
      const [task] = await this.query<{ id: unknown }>('SELECT * FROM task WHERE type = ? AND identifier = ?', [t.type, t.identifier]);
      if (!task) continue;
      out.push({
        task,
        responses: await this.query('SELECT * FROM task_response WHERE task_id = ? ORDER BY id', [task.id]),
        history: await this.query('SELECT time, kind, detail FROM task_event WHERE task_id = ? ORDER BY id', [task.id]),
      });
    }
    return JSON.stringify(out);
  }

  /** Ready messages and consumers of each queue: a task stuck in a queue, or a queue nobody consumes, shows here. */
  private async queueCounts(queues: string[]): Promise<string> {
    try {
      const counts = await this.withChannel((ch) => Promise.all(queues.map((q) => ch.checkQueue(q))));
      return counts.map((c) => `${c.queue} ready=${c.messageCount} consumers=${c.consumerCount}`).join(', ');
    } catch (err) {
      return `not readable (${String(err)})`;
    }
  }

  admin(): RabbitAdmin {
    return new RabbitAdmin(this.config.rabbitmq);
  }

  /** Stops every process with SIGTERM; returns the names of those that did not exit cleanly. */
  async stopAll(): Promise<string[]> {
    const codes = await Promise.all([...this.procs].map(async (p) => [p.name, await p.stop()] as const));
    return codes.filter(([, code]) => code !== 0).map(([name, code]) => `${name} exited with ${code}`);
  }

  /** Stops every process (they must exit cleanly), checks nothing stayed connected, drops everything. */
  async teardown(): Promise<void> {
    const failures = await this.stopAll();
    this.keepLogs();
    await this.sql?.end();
    this.sql = null;
    this.sqlite?.close();
    this.sqlite = null;
    if (this.tmpDir) rmSync(this.tmpDir, { recursive: true, force: true });
    if (this.config && this.backend === 'rabbitmq') {
      // Each step on its own: a management API that does not answer (a broker under a fleet's load) must not
      // leave the database behind, nor a dead database the vhost.
      try {
        await this.removeBrokerParts(this.config);
      } catch (err) {
        failures.push((err as Error).message);
      }
      await dropDatabase(this.config.manager.db, projectRoot()).catch((err: unknown) => { failures.push(`database: ${(err as Error).message}`); });
    }
    if (failures.length) throw new Error(failures.join('; '));
  }

  /** The run's vhost and endpoint users; fails when one of the run's broker connections is still open. */
  private async removeBrokerParts(config: Config): Promise<void> {
    const vhost = encodeURIComponent(config.manager.message_queue.virtual_host);
    // The broker forgets a closed connection within moments; one still listed after 5 s was leaked.
    let open = 0;
    for (let i = 0; i < 50; i++) {
      // A vhost a test removed itself (initialize --teardown) has no connections left.
      const { json } = await this.admin().request('GET', `/vhosts/${vhost}/connections`, undefined, [404]);
      open = Array.isArray(json) ? json.length : 0;
      if (open === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const user of this.endpointUsers) await this.admin().request('DELETE', `/users/${encodeURIComponent(user)}`);
    await this.admin().deleteVhost(config.manager.message_queue);
    if (open > 0) throw new Error(`${open} broker connections left open`);
  }
}
