import os from 'node:os';
import { parseArgs } from 'node:util';
import type { DataSource } from 'typeorm';
import { loadConfig, projectRoot } from '../config/loader';
import { RetentionJob, retentionMs } from '../api/retention';
import { createDataSource, databaseNow } from '../api/storage/database';
import { RetentionStore } from '../api/storage/retention-store';
import { Harness, Proc } from '../test/support/harness';
import { shippedDefaults } from './defaults';
import { ensureWrk, postWithWrk, WrkResult } from './wrk';

/**
 * `npm run bench:retention`: POST latency under load with and without the retention job removing a
 * backlog of expired tasks (by default 1,000,000, each with 3 responses and 2 history events, seeded with
 * INSERT … SELECT). Every setting at its shipped default; the retention is production's 30d. The job runs
 * as a second API instance would run it, here in this process against the same database, so that it can
 * be switched on and off between phases of one API process: the phases alternate (`--rounds` each), and a
 * slow spell of a shared machine lands on both modes alike. A program, not a test: it prints figures.
 */
const { values: opt } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '6' },
    retention: { type: 'string', default: '30d' },
    json: { type: 'boolean', default: false },
  },
});
const ROWS = Number(opt.rows);
const SECONDS = Number(opt.seconds);
const ENDPOINTS = ['bench1', 'bench2', 'bench3'];
const log = (msg: string): void => { if (!opt.json) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`); };
const round = (n: number): number => Math.round(n * 10) / 10;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Expired tasks, all ended 40 days ago or earlier, with the rows the system would have written for them. */
async function seed(h: Harness, rows: number): Promise<number> {
  const t0 = Date.now();
  const list = JSON.stringify(ENDPOINTS);
  await h.query(`INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count, received_count,
      finished_count, failed_count, request_hash, start_time, sent_time, end_time, last_modified_time)
    SELECT CONCAT('exp-', seq), 'worker', 'DONE', '{"n":1}', '${list}', '${list}', 3, 3, 3, 0, 'expired',
      NOW(3) - INTERVAL 40 DAY - INTERVAL seq SECOND, NOW(3) - INTERVAL 40 DAY - INTERVAL seq SECOND,
      NOW(3) - INTERVAL 40 DAY - INTERVAL seq SECOND + INTERVAL 1 SECOND, NOW(3) - INTERVAL 40 DAY - INTERVAL seq SECOND + INTERVAL 1 SECOND
    FROM seq_1_to_${rows}`);
  const [{ hi }] = await h.query<{ hi: number }>(`SELECT MAX(id) AS hi FROM task`);
  await h.query(`INSERT INTO task_response (task_id, endpoint, state, \`round\`, status, errnr, payload, attempts, start_time, last_modified_time)
    SELECT t.id, e.name, 'succeeded', 0, 1, 0, '{"ok":true}', 1, t.start_time, t.end_time
    FROM task t JOIN (SELECT 'bench1' AS name UNION ALL SELECT 'bench2' UNION ALL SELECT 'bench3') e WHERE t.id <= ?`, [hi]);
  await h.query(`INSERT INTO task_event (task_id, time, kind, detail)
    SELECT id, start_time, 'created', NULL FROM task WHERE id <= ? UNION ALL SELECT id, end_time, 'done', NULL FROM task WHERE id <= ?`, [hi, hi]);
  await h.query('ANALYZE TABLE task, task_response, task_event');
  log(`seeded ${rows} expired tasks, ${3 * rows} responses, ${2 * rows} events in ${round((Date.now() - t0) / 1000)} s`);
  return Number(hi);
}

const expiredLeft = async (h: Harness, hi: number): Promise<number> =>
  Number((await h.query<{ n: number }>('SELECT COUNT(*) AS n FROM task WHERE id <= ?', [hi]))[0].n);

interface Phase {
  retention: string;
  accepted_per_s: number;
  post_ms: { p50: number; p99: number };
  /** Expired tasks removed per second while the load ran (null: retention off). */
  removed_per_s: number | null;
}

/** One measured wrk run; with a retention job removing meanwhile when `job` is given. */
async function phase(h: Harness, ds: DataSource | null, hi: number, n: number): Promise<Phase> {
  let job: RetentionJob | null = null;
  let running: Promise<number> | null = null;
  if (ds) {
    const api = h.config.api;
    job = new RetentionJob(new RetentionStore(ds), retentionMs(String(opt.retention)) as number, api.retention_batch, api.retention_duty_cycle);
    running = job.run(await databaseNow(ds));
    // Measured from its second batch on, as it runs for hours through a large backlog.
    for (const before = await expiredLeft(h, hi); await expiredLeft(h, hi) === before;) await sleep(200);
  }
  const left0 = await expiredLeft(h, hi);
  const t0 = performance.now();
  const wrk: WrkResult = await postWithWrk(h.port, { prefix: `run${n}`, seconds: SECONDS, connections: Number(opt.concurrency), endpoints: ENDPOINTS });
  const left1 = await expiredLeft(h, hi);
  const elapsed = (performance.now() - t0) / 1000;
  job?.stop();
  const removedTotal = await running;
  const errors = Object.values(wrk.errors).reduce((a, b) => a + b, 0);
  if (errors > 0) throw new Error(`wrk saw errors: ${JSON.stringify(wrk.errors)}`);
  if (ds && (left1 === 0 || removedTotal === 0)) throw new Error('the backlog ran out during the measured run: seed more rows');
  const result: Phase = {
    retention: ds ? String(opt.retention) : 'off', accepted_per_s: Math.round(wrk.requests / (wrk.duration_us / 1e6)),
    post_ms: { p50: round(wrk.p50_us / 1000), p99: round(wrk.p99_us / 1000) },
    removed_per_s: ds ? Math.round((left0 - left1) / elapsed) : null,
  };
  log(`retention ${result.retention}: ${JSON.stringify(result)}`);
  return result;
}

/** Expired tasks removed per second by the job alone, no load beside it, at this duty cycle. */
async function alone(h: Harness, ds: DataSource, hi: number, dutyCycle: number): Promise<number> {
  const job = new RetentionJob(new RetentionStore(ds), retentionMs(String(opt.retention)) as number, h.config.api.retention_batch, dutyCycle);
  const running = job.run(await databaseNow(ds));
  await sleep(2000);
  const left0 = await expiredLeft(h, hi);
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const left1 = await expiredLeft(h, hi);
  const rate = Math.round((left0 - left1) / ((performance.now() - t0) / 1000));
  job.stop();
  await running;
  log(`alone, duty cycle ${dutyCycle}: ${rate} tasks removed/s`);
  return rate;
}

async function stop(p: Proc): Promise<void> {
  const code = await p.stop();
  if (code !== 0) throw new Error(`${p.name} exited with ${code}`);
}

const mean = (xs: number[]): number => round(xs.reduce((a, b) => a + b, 0) / xs.length);
const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return round(sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2);
};

async function main(): Promise<void> {
  const wrkVersion = await ensureWrk();
  const h = new Harness({ env: shippedDefaults(loadConfig({ mode: 'test', env: { TASKER_TEST_ID: 'bench' } })) });
  await h.setup();
  const phases: Phase[] = [];
  let remaining = 0;
  let removedAlone = { duty_cycle: 0, full: 0 };
  let hi = 0;
  try {
    h.discardStdout = true;
    for (const name of ENDPOINTS) await h.startManager(name, ['worker']);
    hi = await seed(h, ROWS);
    const api = await h.startApi();
    const ds = createDataSource(h.config.manager.db, projectRoot());
    await ds.initialize();
    try {
      log(`warm-up: ${opt.warmup} s of wrk`);
      await postWithWrk(h.port, { prefix: 'warm', seconds: Number(opt.warmup), connections: Number(opt.concurrency), endpoints: ENDPOINTS });
      for (let i = 0; i < Number(opt.rounds); i++) {
        phases.push(await phase(h, null, hi, 2 * i));
        phases.push(await phase(h, ds, hi, 2 * i + 1));
      }
      removedAlone = { duty_cycle: await alone(h, ds, hi, h.config.api.retention_duty_cycle), full: await alone(h, ds, hi, 1) };
      remaining = await expiredLeft(h, hi);
    } finally {
      await ds.destroy();
      await stop(api);
    }
  } finally {
    await h.teardown();
  }
  const off = phases.filter((p) => p.retention === 'off');
  const on = phases.filter((p) => p.retention !== 'off');
  const report = {
    date: new Date().toISOString(), load_generator: wrkVersion, machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    expired_tasks: ROWS, expired_left: remaining, batch: h.config.api.retention_batch, duty_cycle: h.config.api.retention_duty_cycle, seconds: SECONDS, concurrency: Number(opt.concurrency), phases,
    p99_ms: { off: mean(off.map((p) => p.post_ms.p99)), on: mean(on.map((p) => p.post_ms.p99)) },
    p50_ms: { off: mean(off.map((p) => p.post_ms.p50)), on: mean(on.map((p) => p.post_ms.p50)) },
    p99_median_ms: { off: median(off.map((p) => p.post_ms.p99)), on: median(on.map((p) => p.post_ms.p99)) },
    accepted_per_s: { off: mean(off.map((p) => p.accepted_per_s)), on: mean(on.map((p) => p.accepted_per_s)) },
    removed_per_s: mean(on.map((p) => p.removed_per_s ?? 0)),
    removed_alone_per_s: removedAlone,
  };
  if (opt.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const change = (a: number, b: number): string => `${b >= a ? '+' : ''}${round(((b - a) / a) * 100)} %`;
  process.stdout.write([
    `tasker bench:retention: ${ROWS} expired tasks (3 responses, 2 events each), wrk ${SECONDS} s at ${report.concurrency} connections, `
      + `${opt.rounds} alternating rounds per mode, ${report.machine}, shipped default configuration (retention ${opt.retention}, batch ${report.batch}, duty cycle ${report.duty_cycle} when on)`,
    '',
    '| | retention off | retention on, removing | change |',
    '| --- | ---: | ---: | ---: |',
    `| POST p50 (mean) | ${report.p50_ms.off} ms | ${report.p50_ms.on} ms | ${change(report.p50_ms.off, report.p50_ms.on)} |`,
    `| POST p99 (mean of the rounds) | ${report.p99_ms.off} ms | ${report.p99_ms.on} ms | ${change(report.p99_ms.off, report.p99_ms.on)} |`,
    `| POST p99 (median of the rounds) | ${report.p99_median_ms.off} ms | ${report.p99_median_ms.on} ms | ${change(report.p99_median_ms.off, report.p99_median_ms.on)} |`,
    `| accepted tasks/s | ${report.accepted_per_s.off} | ${report.accepted_per_s.on} | ${change(report.accepted_per_s.off, report.accepted_per_s.on)} |`,
    `| expired tasks removed/s (with their 3 responses and 2 events) | - | ${report.removed_per_s} | |`,
    '',
    `the job alone, no load: ${report.removed_alone_per_s.duty_cycle} tasks removed/s at duty cycle ${report.duty_cycle}, ${report.removed_alone_per_s.full} at 1`,
    '',
  ].join('\n'));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
