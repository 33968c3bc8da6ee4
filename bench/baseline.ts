import { spawn } from 'node:child_process';
import amqp from 'amqplib';
import mysql from 'mysql2/promise';
import { summary } from './stats';

/**
 * The same pipeline written directly against amqplib and mysql2, with no HTTP and no ORM: insert the task,
 * publish it with a confirm to a fanout exchange with one durable queue per endpoint, and per endpoint a
 * consumer process that inserts its response row and acks. It shows what the broker and the database
 * cost on their own, so the project's overhead is the ratio.
 */

export interface BaselineConfig {
  mysqlUri: string;
  amqpUrl: string;
  endpoints: string[];
  prefetch: number;
}

const EXCHANGE = 'baseline.worker';
const queueOf = (endpoint: string): string => `baseline.worker.${endpoint}`;

async function consumer(cfg: BaselineConfig, endpoint: string): Promise<void> {
  const pool = mysql.createPool({ uri: cfg.mysqlUri, connectionLimit: 10 });
  const conn = await amqp.connect(cfg.amqpUrl);
  const ch = await conn.createChannel();
  await ch.prefetch(cfg.prefetch);
  await ch.consume(queueOf(endpoint), (msg) => {
    if (!msg) return;
    const { id } = JSON.parse(msg.content.toString()) as { id: number };
    pool.query('INSERT INTO baseline_response (task_id, endpoint) VALUES (?, ?)', [id, endpoint])
      .then(() => ch.ack(msg), () => ch.nack(msg));
  });
  process.send?.('ready');
  process.on('SIGTERM', () => {
    void conn.close().then(() => pool.end()).then(() => process.exit(0));
  });
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
  await pool.query(`CREATE TABLE IF NOT EXISTS baseline_task (id INT AUTO_INCREMENT PRIMARY KEY, identifier VARCHAR(64) NOT NULL,
    payload LONGTEXT, UNIQUE KEY (identifier)) ENGINE=InnoDB`);
  await pool.query(`CREATE TABLE IF NOT EXISTS baseline_response (id INT AUTO_INCREMENT PRIMARY KEY, task_id INT NOT NULL,
    endpoint VARCHAR(64) NOT NULL, created DATETIME(3) NOT NULL DEFAULT NOW(3), UNIQUE KEY (task_id, endpoint)) ENGINE=InnoDB`);
  const conn = await amqp.connect(cfg.amqpUrl);
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange(EXCHANGE, 'fanout', { durable: true });
  for (const ep of cfg.endpoints) {
    await ch.assertQueue(queueOf(ep), { durable: true });
    await ch.bindQueue(queueOf(ep), EXCHANGE, '');
  }
  const children = cfg.endpoints.map((ep) => spawn(process.execPath, [__filename, 'consumer', JSON.stringify(cfg), ep], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))));

  const sent = new Map<number, number>();
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
        sent.set(id, start);
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
    sent.clear();
    postMs.length = 0;
  }
  const t0 = Date.now();
  await run('b-', tasks);
  const tAccepted = Date.now();
  await allDone(warmup + tasks);
  const [done] = await pool.query(`SELECT r.task_id, MAX(r.created) AS t FROM baseline_response r JOIN baseline_task t ON t.id = r.task_id
    WHERE t.identifier LIKE 'b-%' GROUP BY r.task_id`) as [{ task_id: number; t: string }[], unknown];
  const finishedAt = done.map((r) => Date.parse(r.t.replace(' ', 'T') + 'Z'));
  const e2e = done.map((r, i) => finishedAt[i] - (sent.get(r.task_id) ?? NaN));
  // When the last response was written, as the database recorded it (not when the poll noticed).
  const tDone = Math.max(...finishedAt);
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('exit', resolve))));
  await conn.close();
  await pool.query('DROP TABLE baseline_response');
  await pool.query('DROP TABLE baseline_task');
  await pool.end();
  const post = summary(postMs);
  const e = summary(e2e);
  return {
    accepted_per_s: Math.round(tasks / ((tAccepted - t0) / 1000)),
    post_ms: { p50: post.p50, p99: post.p99 },
    completed_per_s: Math.round(tasks / ((tDone - t0) / 1000)),
    e2e_ms: { p50: e.p50, p99: e.p99 },
  };
}

if (require.main === module && process.argv[2] === 'consumer') {
  void consumer(JSON.parse(process.argv[3]) as BaselineConfig, process.argv[4]);
}
