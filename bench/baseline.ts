import { spawn } from 'node:child_process';
import amqp from 'amqplib';
import mysql from 'mysql2/promise';
import { summary } from './stats';

/**
 * The same pipeline written directly against amqplib and mysql2, with no HTTP, no ORM and no completion
 * tracking: insert the task and publish it with a confirm to a fanout exchange with one durable queue per
 * endpoint; per endpoint a consumer process that publishes its result with a confirm to a responses queue
 * and acks; a collector process that inserts the results of each burst in one statement and acks them.
 * It shows what the broker and the database cost on their own, so the project's overhead is the ratio.
 */

export interface BaselineConfig {
  mysqlUri: string;
  amqpUrl: string;
  endpoints: string[];
  prefetch: number;
}

const EXCHANGE = 'baseline.worker';
const RESPONSES = 'baseline.responses';
const queueOf = (endpoint: string): string => `baseline.worker.${endpoint}`;

async function endpoint(cfg: BaselineConfig, name: string): Promise<void> {
  const conn = await amqp.connect(cfg.amqpUrl);
  const ch = await conn.createConfirmChannel();
  await ch.prefetch(cfg.prefetch);
  await ch.consume(queueOf(name), (msg) => {
    if (!msg) return;
    const { id } = JSON.parse(msg.content.toString()) as { id: number };
    ch.publish('', RESPONSES, Buffer.from(JSON.stringify({ task_id: id, endpoint: name, errnr: 0, payload: { ok: true } })),
      { persistent: true, contentType: 'application/json' }, (err) => (err ? ch.nack(msg) : ch.ack(msg)));
  });
  process.send?.('ready');
  process.on('SIGTERM', () => { void conn.close().then(() => process.exit(0)); });
}

async function collector(cfg: BaselineConfig): Promise<void> {
  const pool = mysql.createPool({ uri: cfg.mysqlUri, connectionLimit: 10 });
  const conn = await amqp.connect(cfg.amqpUrl);
  const ch = await conn.createChannel();
  await ch.prefetch(500);
  let burst: amqp.ConsumeMessage[] = [];
  const flush = (): void => {
    const msgs = burst;
    burst = [];
    const rows = msgs.map((m) => JSON.parse(m.content.toString()) as { task_id: number; endpoint: string; errnr: number; payload: unknown });
    pool.query('INSERT INTO baseline_response (task_id, endpoint, errnr, payload) VALUES ?',
      [rows.map((r) => [r.task_id, r.endpoint, r.errnr, JSON.stringify(r.payload)])])
      .then(() => { for (const m of msgs) ch.ack(m); }, () => { for (const m of msgs) ch.nack(m); });
  };
  await ch.consume(RESPONSES, (msg) => {
    if (!msg) return;
    if (burst.length === 0) setImmediate(flush);
    burst.push(msg);
  });
  process.send?.('ready');
  process.on('SIGTERM', () => { void conn.close().then(() => pool.end()).then(() => process.exit(0)); });
}

export interface BaselineResult {
  accepted_per_s: number;
  post_ms: { p50: number; p99: number };
  completed_per_s: number;
  e2e_ms: { p50: number; p99: number };
}

export async function runBaseline(
  cfg: BaselineConfig, tasks: number, concurrency: number, payload: unknown, warmup = 0,
): Promise<BaselineResult> {
  const pool = mysql.createPool({ uri: cfg.mysqlUri, connectionLimit: 10, dateStrings: true });
  await pool.query(`CREATE TABLE IF NOT EXISTS baseline_task (id BIGINT AUTO_INCREMENT PRIMARY KEY, identifier VARCHAR(64) NOT NULL,
    payload LONGTEXT, created DATETIME(3) NOT NULL DEFAULT NOW(3), UNIQUE KEY (identifier)) ENGINE=InnoDB`);
  await pool.query(`CREATE TABLE IF NOT EXISTS baseline_response (id BIGINT AUTO_INCREMENT PRIMARY KEY, task_id BIGINT NOT NULL,
    endpoint VARCHAR(64) NOT NULL, errnr INT NOT NULL, payload LONGTEXT, created DATETIME(3) NOT NULL DEFAULT NOW(3),
    UNIQUE KEY (task_id, endpoint)) ENGINE=InnoDB`);
  const conn = await amqp.connect(cfg.amqpUrl);
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange(EXCHANGE, 'fanout', { durable: true });
  await ch.assertQueue(RESPONSES, { durable: true });
  for (const ep of cfg.endpoints) {
    await ch.assertQueue(queueOf(ep), { durable: true });
    await ch.bindQueue(queueOf(ep), EXCHANGE, '');
  }
  const child = (...args: string[]) => spawn(process.execPath, [__filename, ...args, JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const children = [child('collector'), ...cfg.endpoints.map((ep) => child('endpoint', ep))];
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))));

  const postMs: number[] = [];
  const run = async (prefix: string, count: number): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const start = Date.now();
        const body = JSON.stringify(payload);
        const [res] = await pool.query('INSERT INTO baseline_task (identifier, payload) VALUES (?, ?)', [`${prefix}${i}`, body]) as [{ insertId: number }, unknown];
        const id = res.insertId;
        await new Promise<void>((resolve, reject) => {
          ch.publish(EXCHANGE, '', Buffer.from(JSON.stringify({ id, identifier: `${prefix}${i}`, payload })),
            { persistent: true, contentType: 'application/json', messageId: String(id) }, (err) => (err ? reject(err) : resolve()));
        });
        postMs.push(Date.now() - start);
      }
    }));
  };
  const allDone = async (total: number): Promise<void> => {
    for (;;) {
      const [rows] = await pool.query('SELECT COUNT(*) AS n FROM baseline_response') as [{ n: number }[], unknown];
      if (Number(rows[0].n) >= total * cfg.endpoints.length) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  if (warmup > 0) {
    await run('w-', warmup);
    await allDone(warmup);
    postMs.length = 0;
  }
  const t0 = Date.now();
  await run('b-', tasks);
  const tAccepted = Date.now();
  await allDone(warmup + tasks);
  const [done] = await pool.query(`SELECT MIN(t.created) AS start, MAX(r.created) AS end FROM baseline_response r JOIN baseline_task t ON t.id = r.task_id
    WHERE t.identifier LIKE 'b-%' GROUP BY r.task_id`) as [{ start: string; end: string }[], unknown];
  const at = (s: string): number => Date.parse(s.replace(' ', 'T') + 'Z');
  const e2e = done.map((r) => at(r.end) - at(r.start));
  // From the first task stored to the last response stored, as the database recorded them.
  const span = done.reduce((m, r) => Math.max(m, at(r.end)), -Infinity) - done.reduce((m, r) => Math.min(m, at(r.start)), Infinity);
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('exit', resolve))));
  await ch.deleteQueue(RESPONSES);
  await conn.close();
  await pool.query('DROP TABLE baseline_response');
  await pool.query('DROP TABLE baseline_task');
  await pool.end();
  const post = summary(postMs);
  const e = summary(e2e);
  return {
    accepted_per_s: Math.round(tasks / ((tAccepted - t0) / 1000)),
    post_ms: { p50: post.p50, p99: post.p99 },
    completed_per_s: Math.round(tasks / (span / 1000)),
    e2e_ms: { p50: e.p50, p99: e.p99 },
  };
}

if (require.main === module && process.argv[2] === 'endpoint') {
  void endpoint(JSON.parse(process.argv[4]) as BaselineConfig, process.argv[3]);
} else if (require.main === module && process.argv[2] === 'collector') {
  void collector(JSON.parse(process.argv[3]) as BaselineConfig);
}
