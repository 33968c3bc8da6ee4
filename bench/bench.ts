import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { projectRoot } from '../config/loader';
import { Completion } from '../api/storage/completion';
import { createDataSource } from '../api/storage/database';
import { Backend, Harness, Proc } from '../test/support/harness';
import { runBaseline } from './baseline';
import { getJson, postAll } from './load';
import { ProcessMeter, summary } from './stats';

/**
 * `npm run bench`: the SPEC §10 workload against a fresh database and vhost (or the standalone
 * process), the same pipeline written directly with amqplib and mysql2 as a baseline, a latency run at
 * concurrency 1, and a scale run with many stored tasks. A program, not a test: it prints figures.
 */
const { values: opt } = parseArgs({
  options: {
    tasks: { type: 'string', default: '5000' },
    /** Tasks run through first, unmeasured, so that the measured ones meet JIT-compiled code. */
    warmup: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '64' },
    endpoints: { type: 'string', default: '3' },
    mode: { type: 'string', default: 'rabbitmq' },
    'latency-tasks': { type: 'string', default: '300' },
    'scale-rows': { type: 'string', default: '1000000' },
    'no-baseline': { type: 'boolean', default: false },
    'no-latency': { type: 'boolean', default: false },
    'no-scale': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    /** Write V8 CPU profiles of the API and managers (.cpuprofile) into this folder. */
    profile: { type: 'string' },
  },
});
const TASKS = Number(opt.tasks);
const WARMUP = Number(opt.warmup);
const CONCURRENCY = Number(opt.concurrency);
const ENDPOINTS = Array.from({ length: Number(opt.endpoints) }, (_v, i) => `bench${i + 1}`);
const BACKEND = opt.mode as Backend;
if (!['rabbitmq', 'standalone'].includes(BACKEND)) throw new Error('--mode must be rabbitmq or standalone');
// About 200 bytes of JSON, with the no-op handler (no simulated work).
const PAYLOAD = { sleep: 0, data: 'x'.repeat(150), n: 0 };
const log = (msg: string): void => { if (!opt.json) process.stderr.write(`${msg}\n`); };

function pidOf(name: string): number | null {
  try {
    return Number(execFileSync('pidof', ['-s', name], { encoding: 'utf8' }).trim()) || null;
  } catch {
    return null;
  }
}

async function waitAllDone(h: Harness, prefix: string, count: number): Promise<number> {
  for (;;) {
    const rows = await h.query(`SELECT COUNT(*) AS n FROM task WHERE status = 'DONE' AND identifier LIKE ?`, [`${prefix}%`]);
    if (Number(rows[0].n) >= count) return performance.timeOrigin + performance.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function toMs(t: unknown): number {
  const s = String(t);
  return Date.parse(s.includes('T') ? s : s.replace(' ', 'T') + 'Z');
}

async function endTimes(h: Harness, prefix: string): Promise<Map<string, number>> {
  const rows = await h.query<{ identifier: string; end_time: unknown }>('SELECT identifier, end_time FROM task WHERE identifier LIKE ?', [`${prefix}%`]);
  return new Map(rows.map((r) => [r.identifier, toMs(r.end_time)]));
}

async function throughput(h: Harness, procs: Proc[]): Promise<Record<string, unknown>> {
  const body = (prefix: string) => (i: number) => JSON.stringify({ identifier: `${prefix}${i}`, payload: { ...PAYLOAD, n: i }, endpoints: ENDPOINTS });
  if (WARMUP > 0) {
    log(`warm-up: ${WARMUP} tasks`);
    await postAll(h.port, () => '/worker', body('warm-'), WARMUP, CONCURRENCY);
    await waitAllDone(h, 'warm-', WARMUP);
  }
  const meter = new ProcessMeter([
    ...procs.map((p) => ({ name: p.name, pid: p.child.pid! })),
    ...(BACKEND === 'rabbitmq' ? [{ name: 'mariadbd', pid: pidOf('mariadbd') ?? 0 }, { name: 'rabbitmq (beam.smp)', pid: pidOf('beam.smp') ?? 0 }] : []),
    { name: 'bench (load generator)', pid: process.pid },
  ]);
  log(`throughput: ${TASKS} tasks, concurrency ${CONCURRENCY}, endpoints ${ENDPOINTS.join(', ')}`);
  const results = await postAll(h.port, () => '/worker', body('run-'), TASKS, CONCURRENCY);
  const bad = results.filter((r) => r.status !== 201).length;
  if (bad) throw new Error(`${bad} POSTs were not answered 201`);
  const first = Math.min(...results.map((r) => r.sentAt));
  const lastAccepted = Math.max(...results.map((r) => r.doneAt));
  await waitAllDone(h, 'run-', TASKS);
  const processes = meter.read();
  const ends = await endTimes(h, 'run-');
  // When the last task became DONE, as the database recorded it (not when the poll noticed).
  const allDone = Math.max(...ends.values());
  const e2e = results.map((r, i) => (ends.get(`run-${i}`) ?? NaN) - r.sentAt);
  const post = summary(results.map((r) => r.doneAt - r.sentAt));
  const e = summary(e2e);
  return {
    tasks: TASKS, concurrency: CONCURRENCY, endpoints: ENDPOINTS.length,
    accepted_per_s: Math.round(TASKS / ((lastAccepted - first) / 1000)),
    post_ms: { p50: round(post.p50), p99: round(post.p99) },
    completed_per_s: Math.round(TASKS / ((allDone - first) / 1000)),
    deliveries_per_s: Math.round((TASKS * ENDPOINTS.length) / ((allDone - first) / 1000)),
    e2e_ms: { p50: round(e.p50), p99: round(e.p99) },
    processes,
  };
}

async function latency(h: Harness, count: number): Promise<Record<string, unknown>> {
  log(`latency: ${count} tasks one at a time`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const e2e: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const [r] = await postAll(h.port, () => '/worker', () => JSON.stringify({ identifier: `lat-${i}`, payload: PAYLOAD, endpoints: ENDPOINTS }), 1, 1);
      await waitAllDone(h, `lat-${i}`, 1);
      const ends = await endTimes(h, `lat-${i}`);
      e2e.push((ends.get(`lat-${i}`) ?? NaN) - r.sentAt);
    }
  } finally {
    agent.destroy();
  }
  const s = summary(e2e);
  return { tasks: count, e2e_ms: { p50: round(s.p50), p99: round(s.p99) } };
}

async function scale(h: Harness, rows: number): Promise<Record<string, unknown>> {
  log(`scale: seeding ${rows} tasks with one response each`);
  const t0 = Date.now();
  const stale = Math.min(10_000, Math.floor(rows / 100));
  await h.query(`INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count, received_count,
      finished_count, failed_count, request_hash, start_time, sent_time, end_time, last_modified_time)
    SELECT CONCAT('seed-', seq), 'worker', IF(seq <= ${stale}, 'SENT', 'DONE'), '{"n":1}', '["bench1"]', '["bench1"]', 1,
      IF(seq <= ${stale}, 0, 1), IF(seq <= ${stale}, 0, 1), 0, 'seed', NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR,
      IF(seq <= ${stale}, NULL, NOW(3)), NOW(3)
    FROM seq_1_to_${rows}`);
  await h.query(`INSERT INTO task_response (task_id, endpoint, status, errnr, payload, attempts, start_time, last_modified_time)
    SELECT id, 'bench1', 1, 0, '{"ok":true}', 1, start_time, end_time FROM task WHERE request_hash = 'seed' AND status = 'DONE'`);
  await h.query('ANALYZE TABLE task, task_response');
  const seeded = (Date.now() - t0) / 1000;
  // GETs are measured in the steady state: after the API's sweep has marked the stale tasks seeded all at
  // once (that first sweep is measured on its own below).
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    const [{ n }] = await h.query(`SELECT COUNT(*) AS n FROM task WHERE status = 'SENT' AND request_hash = 'seed'`);
    if (Number(n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // GETs are measured in the steady state: after the API's sweep has marked the stale tasks seeded all at
  // once (that first sweep is measured on its own below).
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    const [{ n }] = await h.query(`SELECT COUNT(*) AS n FROM task WHERE status = 'SENT' AND request_hash = 'seed'`);
    if (Number(n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ms: number[] = [];
  try {
    for (let i = 0; i < 5500; i++) {
      const id = 1 + Math.floor(Math.random() * rows);
      const r = await getJson(h.port, `/worker/seed-${id}`, agent);
      if (r.status !== 200) throw new Error(`GET seed-${id}: ${r.status}`);
      if (i >= 500) ms.push(r.ms);
    }
  } finally {
    agent.destroy();
  }
  // The floor the machine sets: the same two reads, one after the other, straight over mysql2 from this
  // process (no HTTP, no API process to wake).
  const direct: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const identifier = `seed-${1 + Math.floor(Math.random() * rows)}`;
    const t = performance.now();
    await h.query(`SELECT * FROM task WHERE type = 'worker' AND identifier = ?`, [identifier]);
    await h.query(`SELECT r.* FROM task t JOIN task_response r ON r.task_id = t.id WHERE t.type = 'worker' AND t.identifier = ?`, [identifier]);
    direct.push(performance.now() - t);
  }
  // The API's own sweep over the full table, with the API stopped so that its job does not do it first:
  // the first run marks the stale tasks, the second is the steady state.
  await h.stopAll();
  await h.query(`UPDATE task SET status = 'SENT' WHERE request_hash = 'seed' AND end_time IS NULL`);
  const ds = createDataSource(h.config.manager.db, projectRoot());
  await ds.initialize();
  const completion = new Completion(ds);
  const sweeps: number[] = [];
  let marked = 0;
  for (let i = 0; i < 2; i++) {
    const t = performance.now();
    const n = await completion.sweepIncomplete(new Date(), h.config.api.wait_for_endpoints_timeout * 1000);
    sweeps.push(round(performance.now() - t));
    if (i === 0) marked = n;
  }
  await ds.destroy();
  const g = summary(ms);
  const d = summary(direct);
  return { rows, seed_s: round(seeded), get_ms: { p50: round(g.p50), p99: round(g.p99) }, direct_sql_ms: { p50: round(d.p50), p99: round(d.p99) }, sweep_ms: { first: sweeps[0], marked, steady: sweeps[1] } };
}

const round = (n: number): number => Math.round(n * 10) / 10;

function printTable(r: Record<string, any>): void {
  const out: string[] = [];
  const t = r.throughput;
  out.push(`tasker bench: ${r.mode}, ${t.tasks} tasks, concurrency ${t.concurrency}, ${t.endpoints} endpoints, ${r.machine}`);
  out.push('');
  out.push('| | project | baseline (amqplib + mysql2) | ratio |');
  out.push('| --- | ---: | ---: | ---: |');
  const b = r.baseline;
  const row = (name: string, p: number, q?: number, unit = '') =>
    out.push(`| ${name} | ${p}${unit} | ${q === undefined ? '-' : `${q}${unit}`} | ${q ? (p / q).toFixed(2) : '-'} |`);
  row('accepted tasks/s', t.accepted_per_s, b?.accepted_per_s);
  row('POST latency p50', t.post_ms.p50, b?.post_ms.p50, ' ms');
  row('POST latency p99', t.post_ms.p99, b?.post_ms.p99, ' ms');
  row('completed tasks/s', t.completed_per_s, b?.completed_per_s);
  row('end-to-end p50', t.e2e_ms.p50, b?.e2e_ms.p50, ' ms');
  row('end-to-end p99', t.e2e_ms.p99, b?.e2e_ms.p99, ' ms');
  out.push('');
  out.push('| process | CPU s | peak RSS MB |');
  out.push('| --- | ---: | ---: |');
  for (const p of t.processes) out.push(`| ${p.name} | ${p.cpu_s} | ${p.peak_rss_mb} |`);
  if (r.latency) out.push('', `latency run (concurrency 1, ${r.latency.tasks} tasks): end-to-end p50 ${r.latency.e2e_ms.p50} ms, p99 ${r.latency.e2e_ms.p99} ms`);
  if (r.scale) {
    const s = r.scale;
    out.push(`scale run (${s.rows} tasks stored, seeded in ${s.seed_s} s): GET p50 ${s.get_ms.p50} ms, p99 ${s.get_ms.p99} ms `
      + `(its two reads straight over mysql2: p50 ${s.direct_sql_ms.p50} ms, p99 ${s.direct_sql_ms.p99} ms); `
      + `INCOMPLETE sweep ${s.sweep_ms.first} ms marking ${s.sweep_ms.marked}, then ${s.sweep_ms.steady} ms`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function main(): Promise<void> {
  const cpus = (await import('node:os')).cpus().length;
  const memGb = Math.round((await import('node:os')).totalmem() / 2 ** 30);
  const report: Record<string, unknown> = { date: new Date().toISOString(), mode: BACKEND, machine: `${cpus} cores, ${memGb} GiB` };
  const h = new Harness({
    backend: BACKEND, waitTimeout: 600, handlerTimeout: 60,
    env: {
      TASKER_MANAGER__DB__POOL_SIZE: '10', TASKER_MANAGER__MESSAGE_QUEUE__PREFETCH: '128', TASKER_LOG_LEVEL: 'warn',
    },
    nodeArgs: opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${opt.profile}`] : [],
  });
  await h.setup();
  try {
    const procs = await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker'] })));
    report.throughput = await throughput(h, procs);
    if (!opt['no-latency']) report.latency = await latency(h, Number(opt['latency-tasks']));
    if (!opt['no-scale'] && BACKEND === 'rabbitmq') report.scale = await scale(h, Number(opt['scale-rows']));
    await h.stopAll();
    if (!opt['no-baseline'] && BACKEND === 'rabbitmq') {
      log('baseline: amqplib + mysql2');
      const mq = h.config.manager.message_queue;
      report.baseline = await runBaseline({
        mysqlUri: h.config.manager.db.uri,
        amqpUrl: `amqp://${mq.username}:${mq.password}@${mq.host}:${mq.port}/${encodeURIComponent(mq.virtual_host)}`,
        endpoints: ENDPOINTS, prefetch: 128,
      }, TASKS, CONCURRENCY, PAYLOAD, WARMUP);
    }
  } finally {
    await h.teardown();
  }
  if (opt.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else printTable(report);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
