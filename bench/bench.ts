import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig, projectRoot } from '../config/loader';
import { Completion } from '../api/storage/completion';
import { ResponseRows } from '../api/storage/response-rows';
import { createDataSource } from '../api/storage/database';
import { History } from '../api/storage/history';
import { Backend, Harness, Proc } from '../test/support/harness';
import { makeCertificates } from '../test/support/certificates';
import { RabbitCluster } from '../test/support/rabbit-cluster';
import { runBaseline } from './baseline';
import { shippedDefaults } from './defaults';
import { runFleet } from './fleet';
import { runIsolation } from './isolation';
import { getJson, postAll } from './load';
import { ProcessMeter, summary } from './stats';
import { ensureWrk, postWithWrk } from './wrk';

/**
 * `npm run bench`: the SPEC §10 workload against a fresh database and vhost (or the standalone
 * process) with every setting at its shipped default and `wrk` as the load generator; the same pipeline
 * written directly with amqplib and mysql2 as a baseline; a latency run at concurrency 1; a scale run
 * with many stored tasks. `--fleet N`: the fleet workload instead. A program, not a test: it prints figures.
 */
const { values: opt } = parseArgs({
  options: {
    /** Seconds of the measured wrk run. */
    seconds: { type: 'string', default: '20' },
    /** Seconds of load first, unmeasured, so that the measured run meets JIT-compiled code. */
    warmup: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    endpoints: { type: 'string', default: '3' },
    mode: { type: 'string', default: 'rabbitmq' },
    'baseline-tasks': { type: 'string', default: '20000' },
    'latency-tasks': { type: 'string', default: '300' },
    'scale-rows': { type: 'string', default: '1000000' },
    'no-baseline': { type: 'boolean', default: false },
    'no-latency': { type: 'boolean', default: false },
    'no-scale': { type: 'boolean', default: false },
    'no-throughput': { type: 'boolean', default: false },
    /** The isolation phase: managers with manager.isolation process, then none, alternately (docs/handlers.md "Isolation"). */
    'no-isolation': { type: 'boolean', default: false },
    'isolation-seconds': { type: 'string', default: '10' },
    'isolation-rounds': { type: 'string', default: '2' },
    'isolation-latency-tasks': { type: 'string', default: '150' },
    /** manager.concurrency of the isolated managers (default: the shipped default). */
    'isolation-concurrency': { type: 'string' },
    /** The fleet workload: this many endpoints, each with its own AMQP connection, many per process. */
    fleet: { type: 'string' },
    'fleet-tasks': { type: 'string', default: '20' },
    'fleet-per-process': { type: 'string', default: '100' },
    /** With --fleet: the system's processes reach the broker over TLS (AMQPS). */
    tls: { type: 'boolean' },
    json: { type: 'boolean', default: false },
    /** Write V8 CPU profiles of the API and managers (.cpuprofile) into this folder. */
    profile: { type: 'string' },
  },
});
const SECONDS = Number(opt.seconds);
const WARMUP = Number(opt.warmup);
const CONCURRENCY = Number(opt.concurrency);
const ENDPOINTS = Array.from({ length: Number(opt.endpoints) }, (_v, i) => `bench${i + 1}`);
const BACKEND = opt.mode as Backend;
if (!['rabbitmq', 'standalone'].includes(BACKEND)) throw new Error('--mode must be rabbitmq or standalone');
// About 200 bytes of JSON, with the no-op handler (no simulated work).
const PAYLOAD = { sleep: 0, data: 'x'.repeat(150), n: 0 };
const log = (msg: string): void => { if (!opt.json) process.stderr.write(`${msg}\n`); };
const round = (n: number): number => Math.round(n * 10) / 10;

function pidOf(name: string): number | null {
  try {
    return Number(execFileSync('pidof', ['-s', name], { encoding: 'utf8' }).trim()) || null;
  } catch {
    return null;
  }
}

function toMs(t: unknown): number {
  const s = String(t);
  return Date.parse(s.includes('T') ? s : s.replace(' ', 'T') + 'Z');
}

/** Waits until every task with this identifier prefix is DONE (the count stops growing once the load stopped). */
async function waitAllDone(h: Harness, prefix: string, timeoutMs = 600_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await h.query(`SELECT COUNT(*) AS n, SUM(status = 'DONE') AS done FROM task WHERE identifier LIKE ?`, [`${prefix}%`]);
    if (Number(row.n) > 0 && Number(row.n) === Number(row.done)) return Number(row.n);
    if (Date.now() > deadline) throw new Error(`${prefix}: ${row.done} of ${row.n} tasks DONE after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function throughput(h: Harness, procs: Proc[]): Promise<Record<string, unknown>> {
  if (WARMUP > 0) {
    log(`warm-up: ${WARMUP} s of wrk`);
    await postWithWrk(h.port, { prefix: 'warm', seconds: WARMUP, connections: CONCURRENCY, endpoints: ENDPOINTS });
    await waitAllDone(h, 'warm-');
  }
  const meter = new ProcessMeter([
    ...procs.map((p) => ({ name: p.name, pid: p.child.pid! })),
    ...(BACKEND === 'rabbitmq' ? [{ name: 'mariadbd', pid: pidOf('mariadbd') ?? 0 }, { name: 'rabbitmq (beam.smp)', pid: pidOf('beam.smp') ?? 0 }] : []),
  ]);
  log(`throughput: wrk for ${SECONDS} s, ${CONCURRENCY} connections, endpoints ${ENDPOINTS.join(', ')}`);
  const wrk = await postWithWrk(h.port, { prefix: 'run', seconds: SECONDS, connections: CONCURRENCY, endpoints: ENDPOINTS });
  // Standalone, a full in-process backlog answers 503 (backlog_full): refused, not failed.
  const refused = BACKEND === 'standalone' ? wrk.errors.status : 0;
  const errors = Object.values(wrk.errors).reduce((a, b) => a + b, 0) - refused;
  if (errors > 0) throw new Error(`wrk saw errors: ${JSON.stringify(wrk.errors)}`);
  const tasks = await waitAllDone(h, 'run-');
  const processes = meter.read();
  const rows = await h.query<{ start_time: unknown; end_time: unknown }>(`SELECT start_time, end_time FROM task WHERE identifier LIKE 'run-%'`);
  const starts = rows.map((r) => toMs(r.start_time));
  const ends = rows.map((r) => toMs(r.end_time));
  const bad = rows.filter((_r, i) => Number.isNaN(starts[i]) || Number.isNaN(ends[i]));
  if (bad.length > 0) {
    const sample = await h.query(`SELECT id, identifier, status, start_time, end_time, expected_count, finished_count FROM task WHERE identifier LIKE 'run-%' AND end_time IS NULL LIMIT 3`);
    throw new Error(`${bad.length} DONE tasks without a time: ${JSON.stringify(sample)}`);
  }
  const e2e = summary(rows.map((_r, i) => ends[i] - starts[i]));
  // From the first task stored to the last one DONE, as the database recorded them.
  const span = (ends.reduce((a, b) => Math.max(a, b), -Infinity) - starts.reduce((a, b) => Math.min(a, b), Infinity)) / 1000;
  return {
    tasks, concurrency: CONCURRENCY, endpoints: ENDPOINTS.length, seconds: SECONDS,
    accepted_per_s: Math.round((wrk.requests - refused) / (wrk.duration_us / 1e6)),
    ...(BACKEND === 'standalone' ? { refused_503_per_s: Math.round(refused / (wrk.duration_us / 1e6)) } : {}),
    post_ms: { p50: round(wrk.p50_us / 1000), p99: round(wrk.p99_us / 1000) },
    completed_per_s: Math.round(tasks / span),
    deliveries_per_s: Math.round((tasks * ENDPOINTS.length) / span),
    e2e_ms: { p50: round(e2e.p50), p99: round(e2e.p99) },
    processes,
  };
}

async function latency(h: Harness, count: number): Promise<Record<string, unknown>> {
  log(`latency: ${count} tasks one at a time`);
  const e2e: number[] = [];
  for (let i = 0; i < count; i++) {
    const [r] = await postAll(h.port, () => '/worker', () => JSON.stringify({ identifier: `lat-${i}`, payload: PAYLOAD, endpoints: ENDPOINTS }), 1, 1);
    for (;;) {
      const [row] = await h.query(`SELECT status, end_time FROM task WHERE identifier = ?`, [`lat-${i}`]);
      if (row?.status === 'DONE') {
        e2e.push(toMs(row.end_time) - r.sentAt);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  const s = summary(e2e);
  return { tasks: count, e2e_ms: { p50: round(s.p50), p99: round(s.p99) }, waiters: await waiters(h, 200) };
}

/** `clients` clients waiting (`?wait=30`) on one task that takes a second: how soon after its end each is answered. */
async function waiters(h: Harness, clients: number): Promise<{ clients: number; after_end_ms: { p50: number; max: number } }> {
  const { Pool } = await import('undici');
  const pool = new Pool(`http://127.0.0.1:${h.port}`, { connections: clients });
  try {
    const [created] = await postAll(h.port, () => '/worker', () => JSON.stringify({ identifier: 'waited-on', payload: { sleep: 1 }, endpoints: ENDPOINTS }), 1, 1);
    if (created.status !== 201) throw new Error(`POST waited-on: ${created.status}`);
    const answered = await Promise.all(Array.from({ length: clients }, async () => {
      const res = await pool.request({ method: 'GET', path: '/worker/waited-on?wait=30' });
      const body = await res.body.json() as { task: { status: string } };
      if (res.statusCode !== 200 || body.task.status !== 'DONE') throw new Error(`a waiting client got ${res.statusCode} ${body.task.status}`);
      return performance.timeOrigin + performance.now();
    }));
    const [row] = await h.query(`SELECT end_time FROM task WHERE identifier = 'waited-on'`);
    const after = summary(answered.map((t) => t - toMs(row.end_time)));
    return { clients, after_end_ms: { p50: round(after.p50), max: round(after.max) } };
  } finally {
    await pool.close();
  }
}

/**
 * Every list call of the operator API over the seeded tasks, each many times (the first pages and pages
 * deep in the list), with p50 and p99 per call.
 */
async function listTimings(h: Harness, rows: number): Promise<Record<string, { p50: number; p99: number }>> {
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: Record<string, { p50: number; p99: number }> = {};
  const hourAgo = new Date(Date.now() - 3600_000);
  const ep = (i: number): string => `seed-ep-${i % 100}`;
  const calls: [string, (i: number) => string][] = [
    ['newest tasks', () => '/worker?limit=50'],
    ['status=DONE', () => '/worker?status=DONE&limit=50'],
    ['status=INCOMPLETE (1%)', () => '/worker?status=INCOMPLETE&limit=50'],
    ['state=failed (1%)', () => '/worker?state=failed&limit=50'],
    ['state=missing (1%)', () => '/worker?state=missing&limit=50'],
    ['endpoint=E', (i) => `/worker?endpoint=${ep(i)}&limit=50`],
    ['endpoint=E&state=failed', (i) => `/worker?endpoint=${ep(i)}&state=failed&limit=50`],
    ['since/until (a 10-minute window, days back)', (i) => {
      const until = new Date(hourAgo.getTime() - ((i * 7919) % (rows - 1000)) * 1000);
      return `/worker?since=${new Date(until.getTime() - 600_000).toISOString()}&until=${until.toISOString()}&limit=50`;
    }],
    ['identifier_prefix', (i) => `/worker?identifier_prefix=seed-${1 + ((i * 7919) % Math.floor(rows / 10))}&limit=50`],
    ['/endpoints/E/responses?state=failed', (i) => `/endpoints/${ep(i)}/responses?state=failed&limit=50`],
    ['/endpoints/E/responses', (i) => `/endpoints/${ep(i)}/responses?limit=50`],
  ];
  try {
    for (const [name, path] of calls) {
      const ms: number[] = [];
      for (let i = 0; i < 550; i++) {
        const r = await getJson(h.port, path(i), agent);
        if (r.status !== 200) throw new Error(`GET ${path(i)}: ${r.status}`);
        if (i >= 50) ms.push(r.ms);
      }
      const s = summary(ms);
      out[name] = { p50: round(s.p50), p99: round(s.p99) };
    }
  } finally {
    agent.destroy();
  }
  return out;
}

async function scale(h: Harness, rows: number): Promise<Record<string, unknown>> {
  log(`scale: seeding ${rows} tasks, one endpoint each (100 endpoints; 1% failed, the oldest 1% never answered)`);
  const t0 = Date.now();
  const stale = Math.min(10_000, Math.floor(rows / 100));
  // Spread over the last ${rows} seconds (plus an hour), oldest first; seq % 100 = 50 failed.
  await h.query(`INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count, received_count,
      finished_count, failed_count, request_hash, start_time, sent_time, end_time, last_modified_time)
    SELECT CONCAT('seed-', seq), 'worker', IF(seq <= ${stale}, 'SENT', 'DONE'), '{"n":1}',
      CONCAT('["seed-ep-', seq % 100, '"]'), CONCAT('["seed-ep-', seq % 100, '"]'), 1,
      IF(seq <= ${stale}, 0, 1), IF(seq <= ${stale}, 0, 1), IF(seq <= ${stale} OR seq % 100 <> 50, 0, 1), 'seed',
      NOW(3) - INTERVAL (${rows} - seq + 3600) SECOND, NOW(3) - INTERVAL (${rows} - seq + 3600) SECOND,
      IF(seq <= ${stale}, NULL, NOW(3) - INTERVAL (${rows} - seq + 3599) SECOND), NOW(3)
    FROM seq_1_to_${rows}`);
  await h.query(`INSERT INTO task_response (task_id, endpoint, state, round, status, errnr, payload, attempts, start_time, last_modified_time)
    SELECT id, JSON_UNQUOTE(JSON_EXTRACT(expected_endpoints, '$[0]')),
      CASE WHEN status = 'SENT' THEN 'pending' WHEN failed_count = 1 THEN 'failed' ELSE 'succeeded' END, 0,
      IF(status = 'SENT', NULL, 1), failed_count, IF(status = 'SENT', NULL, '{"ok":true}'), IF(status = 'SENT', 0, 1),
      IF(status = 'SENT', NULL, start_time), COALESCE(end_time, start_time)
    FROM task WHERE request_hash = 'seed'`);
  await h.query('ANALYZE TABLE task, task_response');
  const seeded = (Date.now() - t0) / 1000;
  // GETs are measured in the steady state: after the API's sweep has marked the stale tasks seeded all at
  // once (that first sweep is measured on its own below).
  for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
    const [{ n }] = await h.query(`SELECT COUNT(*) AS n FROM task WHERE status = 'SENT' AND request_hash = 'seed'`);
    if (Number(n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const lists = await listTimings(h, rows);
  const http = await import('node:http');
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
  const completion = new Completion(ds, new History(ds), () => undefined, new ResponseRows(ds));
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
  return { rows, seed_s: round(seeded), get_ms: { p50: round(g.p50), p99: round(g.p99) }, direct_sql_ms: { p50: round(d.p50), p99: round(d.p99) }, sweep_ms: { first: sweeps[0], marked, steady: sweeps[1] }, lists };
}

function throughputTable(r: Record<string, any>, out: string[]): void {
  const t = r.throughput;
  out.push(`tasker bench: ${r.mode}, wrk ${t.seconds} s at ${t.concurrency} connections (${t.tasks} tasks), ${t.endpoints} endpoints, ${r.machine}, shipped default configuration`);
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
}

function printTable(r: Record<string, any>): void {
  const out: string[] = [];
  if (r.throughput) throughputTable(r, out);
  if (r.latency) {
    out.push('', `latency run (concurrency 1, ${r.latency.tasks} tasks): end-to-end p50 ${r.latency.e2e_ms.p50} ms, p99 ${r.latency.e2e_ms.p99} ms`);
    const w = r.latency.waiters;
    out.push(`${w.clients} clients waiting on one task (?wait=30): answered ${w.after_end_ms.p50} ms after its end (p50), the last ${w.after_end_ms.max} ms after`);
  }
  if (r.isolation) {
    const i = r.isolation;
    out.push('', `isolation (wrk ${i.seconds} s at ${i.connections} connections, ${i.endpoints} endpoints, the no-op worker handler; medians of ${i.runs.length / 2} rounds each): `
      + `completed tasks/s with manager.isolation process ${i.process_completed_per_s}, none ${i.none_completed_per_s}, ratio ${i.ratio}; `
      + `end-to-end p50 one task at a time (${i.latency_tasks} tasks) ${i.process_e2e_p50_ms} ms vs ${i.none_e2e_p50_ms} ms: isolation adds ${i.added_p50_ms} ms`);
  }
  if (r.scale) {
    const s = r.scale;
    out.push(`scale run (${s.rows} tasks stored, seeded in ${s.seed_s} s): GET p50 ${s.get_ms.p50} ms, p99 ${s.get_ms.p99} ms `
      + `(its two reads straight over mysql2: p50 ${s.direct_sql_ms.p50} ms, p99 ${s.direct_sql_ms.p99} ms); `
      + `INCOMPLETE sweep ${s.sweep_ms.first} ms marking ${s.sweep_ms.marked}, then ${s.sweep_ms.steady} ms`);
    out.push('', '| list call (1,000,000 tasks stored) | p50 | p99 |', '| --- | ---: | ---: |');
    for (const [name, t] of Object.entries(s.lists as Record<string, { p50: number; p99: number }>)) out.push(`| ${name} | ${t.p50} ms | ${t.p99} ms |`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

function printFleet(r: Record<string, any>): void {
  const f = r.fleet;
  const out = [
    `tasker bench --fleet ${f.endpoints}${r.tls ? ' --tls (AMQPS)' : ''}: ${f.processes} manager processes (${f.per_process} endpoints and AMQP connections each), ${r.machine}, shipped default configuration`,
    '',
    '| | measured | target |',
    '| --- | ---: | ---: |',
    `| one task to all ${f.endpoints} endpoints, POST to 201, p50 / p99 (${f.sequential.tasks} tasks one after another) | ${f.sequential.answered_ms.p50} / ${f.sequential.answered_ms.p99} ms | p99 <= 200 ms |`,
    `| one task to all ${f.endpoints} endpoints, POST to DONE, p50 (${f.sequential.tasks} tasks one after another) | ${f.sequential.done_ms.p50} ms | <= 1000 ms |`,
    `| same, p99 | ${f.sequential.done_ms.p99} ms | |`,
    `| responses stored per second by the server side (a backlog of ${f.backlog.responses} results in ${f.backlog.messages} messages with the heartbeats, stored after the API was away) | ${f.backlog.responses_per_s} | >= 10000 |`,
    `| responses per second end to end, the simulated fleet on the same cores (${f.sustained.tasks} tasks to all at once, ${f.sustained.responses} responses) | ${f.sustained.responses_per_s} | |`,
    `| MariaDB connections at peak (the API's pool is ${f.api_pool_size}; the bench's own 2 included) | ${f.db_connections_peak} | <= ${f.api_pool_size + 2} |`,
    `| RabbitMQ memory before the fleet started / with it connected / at peak | ${f.rabbitmq_mb.before} / ${f.rabbitmq_mb.started} / ${f.rabbitmq_mb.peak} MB | |`,
    `| RabbitMQ memory per endpoint connection; its file descriptors with the fleet connected | ${f.rabbitmq_per_connection_kb} KB; ${f.rabbitmq_fds} | |`,
    `| database per broadcast to all (rows, KB with indexes, after ANALYZE) | ${Object.entries(f.database_per_broadcast as Record<string, { rows: number; kb: number }>).map(([t, x]) => `${t} ${x.rows}, ${x.kb} KB`).join('; ')} | |`,
    `| the manager processes' resident memory | ${f.managers_rss_mb} MB (${Math.round(f.managers_rss_mb * 1024 / f.endpoints)} KB per endpoint) | |`,
    '',
    `CPU seconds while the ${f.sustained.tasks} tasks ran (${f.sustained.seconds} s): api ${f.sustained.cpu_s.api}, managers ${f.sustained.cpu_s.managers}, `
      + `mariadbd ${f.sustained.cpu_s.mariadbd}, rabbitmq ${f.sustained.cpu_s.rabbitmq}`,
    `fleet start-up: ${f.startup_s} s for ${f.endpoints} endpoints to connect and register`,
    ...f.selector ? [`POST to 201 (${f.selector.tasks} each, alternately), ${f.selector.matching} endpoints named: p50 ${f.selector.named_post_ms.p50} ms (p99 ${f.selector.named_post_ms.p99}); `
      + `the same ${f.selector.matching} by the selector group=g0: p50 ${f.selector.selector_post_ms.p50} ms (p99 ${f.selector.selector_post_ms.p99})`] : [],
  ];
  process.stdout.write(out.join('\n') + '\n');
}

async function main(): Promise<void> {
  const wrkVersion = await ensureWrk();
  const report: Record<string, unknown> = {
    date: new Date().toISOString(), mode: BACKEND, load_generator: wrkVersion,
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  };
  const defaults = BACKEND === 'rabbitmq' ? shippedDefaults(loadConfig({ mode: 'test', env: { TASKER_TEST_ID: 'bench' } })) : {};
  // The fleet gets a RabbitMQ node of its own (thousands of connections, its memory): the machine's broker
  // is never restarted or reconfigured by a bench.
  // --tls: the system's processes reach it over AMQPS (certificates made for the run); the bench's own checks do not.
  const certs = opt.fleet !== undefined && opt.tls ? await makeCertificates() : null;
  const ownBroker = opt.fleet !== undefined
    ? new RabbitCluster(1, { name: `bench${process.pid}`, openFilesHard: true, ...certs ? { tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } } : {} })
    : null;
  if (ownBroker) {
    log('fleet: starting a RabbitMQ node of its own');
    await ownBroker.start();
  }
  const h = new Harness({
    backend: BACKEND,
    env: { ...defaults, ...ownBroker?.testEnv() },
    nodeArgs: opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${opt.profile}`] : [],
  });
  // Each step on its own: a teardown that fails (a management API slow under the fleet's load) must not
  // leave the bench's broker node running or its certificates behind. Run once: at the end, or on Ctrl-C.
  let cleaned: Promise<void> | null = null;
  const cleanup = (): Promise<void> => (cleaned ??= (async () => {
    await h.teardown().catch((err: unknown) => log(`teardown: ${(err as Error).message}`));
    await ownBroker?.destroy().catch((err: unknown) => log(`stopping the bench's RabbitMQ node: ${(err as Error).message}`));
    certs?.remove();
  })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`bench: ${signal}, removing what the bench made (processes, database, vhost, broker node)`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await h.setup();
    if (opt.fleet !== undefined) {
      if (BACKEND !== 'rabbitmq') throw new Error('--fleet runs against RabbitMQ and MariaDB');
      report.tls = Boolean(certs);
      report.fleet = await runFleet(h, {
        endpoints: Number(opt.fleet), perProcess: Number(opt['fleet-per-process']), tasks: Number(opt['fleet-tasks']), log, brokerPid: ownBroker?.pid(0),
        processEnv: certs && ownBroker ? {
          TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: `127.0.0.1:${ownBroker.nodes[0].amqpsPort}`,
          TASKER_MANAGER__MESSAGE_QUEUE__TLS__ENABLED: 'true', TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.ca,
        } : undefined,
      });
    } else {
      // The system's processes log as they always do, to no reader: parsing their lines would take this
      // process's share of the 2 cores from the system under test.
      h.discardStdout = true;
      const procs = await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker'] })));
      if (!opt['no-throughput']) report.throughput = await throughput(h, procs);
      if (!opt['no-latency']) report.latency = await latency(h, Number(opt['latency-tasks']));
      if (!opt['no-isolation'] && BACKEND === 'rabbitmq') {
        report.isolation = await runIsolation(h, procs.slice(1), {
          endpoints: ENDPOINTS, seconds: Number(opt['isolation-seconds']), warmup: Math.min(WARMUP, 5), connections: CONCURRENCY,
          latencyTasks: Number(opt['isolation-latency-tasks']), payload: PAYLOAD, rounds: Number(opt['isolation-rounds']),
          ...(opt['isolation-concurrency'] !== undefined ? { concurrency: Number(opt['isolation-concurrency']) } : {}),
          waitAllDone: (prefix) => waitAllDone(h, prefix), toMs, log,
        });
      }
      if (!opt['no-scale'] && BACKEND === 'rabbitmq') report.scale = await scale(h, Number(opt['scale-rows']));
      await h.stopAll();
      if (!opt['no-baseline'] && BACKEND === 'rabbitmq') {
        log('baseline: amqplib + mysql2');
        const mq = h.config.manager.message_queue;
        report.baseline = await runBaseline({
          mysqlUri: h.config.manager.db.uri,
          amqpUrl: `amqp://${mq.username}:${mq.password}@${mq.host}:${mq.port}/${encodeURIComponent(mq.virtual_host)}`,
          endpoints: ENDPOINTS, prefetch: h.config.manager.message_queue.prefetch,
        }, Number(opt['baseline-tasks']), CONCURRENCY, PAYLOAD, Math.round(Number(opt['baseline-tasks']) / 2));
      }
    }
  } finally {
    await cleanup();
  }
  if (opt.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else if (report.fleet) printFleet(report);
  else printTable(report);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
