import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/loader';
import { Harness, Proc } from '../test/support/harness';
import { shippedDefaults } from './defaults';
import { call, claimPlan, measureLatency, type LatencyReport } from './webhook-latency';
import { ensureWrk, postWithWrk, WrkResult } from './wrk';

/**
 * `npm run bench:webhooks`: (1) the added POST latency of webhooks: wrk POSTing tasks with no subscription,
 * then with 3 (each to task.created and task.done, so every POST writes 3 outbox rows and every task 6
 * deliveries), alternately (`--rounds` each), so that a slow spell of a shared machine lands on both alike;
 * (2) deliveries per second: after each round with subscriptions, the backlog it left drained for 10 s by
 * the delivery job, no POST beside it, to a local receiver that answers 204. Every setting at its shipped default
 * (api.webhooks.concurrency 16, interval 1 s) but allow_http and allow_private, which a local receiver needs.
 * (3) the added POST latency apart from load (bench/webhook-latency.ts): `--latency-posts` POSTs per mode, one
 * at a time, in blocks of `--block` alternating between none and 3 subscriptions; the outbox INSERT's own
 * time; the plan of the delivery job's look for due rows. `--only latency` or `--only load` runs one part.
 * A program, not a test: it prints figures.
 */
const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
    'latency-posts': { type: 'string', default: '2000' },
    block: { type: 'string', default: '100' },
    only: { type: 'string', default: '' },
  },
});
const LOAD = opt.only !== 'latency';
const LATENCY = opt.only !== 'load';
const SECONDS = Number(opt.seconds);
const DRAIN_SECONDS = 10;
const ENDPOINTS = ['bench1', 'bench2', 'bench3'];
const log = (msg: string): void => { if (!opt.json) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`); };
const round = (n: number): number => Math.round(n * 10) / 10;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const mean = (xs: number[]): number => round(xs.reduce((a, b) => a + b, 0) / xs.length);

/** A receiver that answers 204 at once and counts. */
class Receiver {
  received = 0;
  private readonly server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      this.received += 1;
      res.writeHead(204).end();
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const pending = async (h: Harness): Promise<number> =>
  Number((await h.query<{ n: number }>(`SELECT COUNT(*) AS n FROM webhook_delivery WHERE status = 'pending'`))[0].n);

/** Waits for the outbox to drain, so that a round does not pay for the last one's deliveries. */
async function drained(h: Harness): Promise<void> {
  const deadline = Date.now() + 600_000;
  while (await pending(h) > 0) {
    if (Date.now() > deadline) throw new Error('the outbox did not drain within 10 minutes');
    await sleep(250);
  }
}

interface Phase {
  subscriptions: number;
  accepted_per_s: number;
  post_ms: { p50: number; p99: number };
}

async function phase(h: Harness, subscriptions: number, n: number): Promise<Phase> {
  const wrk: WrkResult = await postWithWrk(h.port, { prefix: `run${n}`, seconds: SECONDS, connections: Number(opt.concurrency), endpoints: ENDPOINTS });
  const errors = Object.values(wrk.errors).reduce((a, b) => a + b, 0);
  if (errors > 0) throw new Error(`wrk saw errors: ${JSON.stringify(wrk.errors)}`);
  const result: Phase = {
    subscriptions, accepted_per_s: Math.round(wrk.requests / (wrk.duration_us / 1e6)), post_ms: { p50: round(wrk.p50_us / 1000), p99: round(wrk.p99_us / 1000) },
  };
  log(`${subscriptions} subscriptions: ${JSON.stringify(result)}`);
  return result;
}

async function stop(p: Proc): Promise<void> {
  const code = await p.stop();
  if (code !== 0) throw new Error(`${p.name} exited with ${code}`);
}

async function main(): Promise<void> {
  const wrkVersion = LOAD ? await ensureWrk() : null;
  const env = shippedDefaults(loadConfig({ mode: 'test', env: { TASKER_TEST_ID: 'bench' } }));
  const h = new Harness({ env: { ...env, TASKER_API__WEBHOOKS__ALLOW_HTTP: 'true', TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'true' } });
  await h.setup();
  const receiver = new Receiver();
  const url = await receiver.start();
  const phases: Phase[] = [];
  const rates: number[] = [];
  let latency: LatencyReport | null = null;
  let backlogPlan: Record<string, unknown>[] = [];
  try {
    h.discardStdout = true;
    for (const name of ENDPOINTS) await h.startManager(name, ['worker']);
    const api = await h.startApi();
    try {
      if (LOAD) {
        log(`warm-up: ${opt.warmup} s of wrk`);
        await postWithWrk(h.port, { prefix: 'warm', seconds: Number(opt.warmup), connections: Number(opt.concurrency), endpoints: ENDPOINTS });
      }
      if (LATENCY) {
        latency = await measureLatency(h, url, {
          posts: Number(opt['latency-posts']), block: Number(opt.block), endpoints: ENDPOINTS, intervalS: h.config.api.webhooks.interval, log,
        });
        log(`latency: ${JSON.stringify(latency)}`);
      }
      for (let i = 0; LOAD && i < Number(opt.rounds); i++) {
        phases.push(await phase(h, 0, 2 * i));
        const ids: number[] = [];
        for (let s = 0; s < 3; s++) ids.push((await call(h, 'POST', '/webhooks', { url, events: ['task.created', 'task.done'] })).id as number);
        phases.push(await phase(h, 3, 2 * i + 1));
        // The backlog the load left, drained with no POST beside it: deliveries per second.
        const before = receiver.received;
        const left = await pending(h);
        // The plan over a real backlog (thousands of due rows), where a scan would show.
        if (i === 0) backlogPlan = await claimPlan(h);
        await sleep(DRAIN_SECONDS * 1000);
        const rate = Math.round((receiver.received - before) / DRAIN_SECONDS);
        if (await pending(h) === 0) throw new Error(`the backlog (${left}) ran out while measured: raise --seconds`);
        rates.push(rate);
        log(`deliveries: ${rate}/s (backlog ${left})`);
        // Deleting a subscription drops its pending deliveries: the next round starts from an empty outbox.
        for (const id of ids) await call(h, 'DELETE', `/webhooks/${id}`);
        await drained(h);
      }
    } finally {
      await stop(api);
    }
  } finally {
    await receiver.stop();
    await h.teardown();
  }
  const none = phases.filter((p) => p.subscriptions === 0);
  const three = phases.filter((p) => p.subscriptions === 3);
  const report = {
    date: new Date().toISOString(), load_generator: wrkVersion, machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    seconds: SECONDS, concurrency: Number(opt.concurrency), rounds: Number(opt.rounds), phases,
    p50_ms: { none: mean(none.map((p) => p.post_ms.p50)), three: mean(three.map((p) => p.post_ms.p50)) },
    p99_ms: { none: mean(none.map((p) => p.post_ms.p99)), three: mean(three.map((p) => p.post_ms.p99)) },
    accepted_per_s: { none: mean(none.map((p) => p.accepted_per_s)), three: mean(three.map((p) => p.accepted_per_s)) },
    deliveries_per_s: mean(rates), deliveries_per_s_rounds: rates, latency, backlog_claim_plan: backlogPlan,
  };
  if (opt.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const change = (a: number, b: number): string => `${b >= a ? '+' : ''}${round(((b - a) / a) * 100)} %`;
  const planText = (rows: Record<string, unknown>[]): string[] => rows.map((r) => `${String(r.table)}: ${String(r.type)} on ${String(r.key)}, ~${String(r.rows)} rows estimated${r.r_rows === undefined ? '' : `, ${String(r.r_rows)} read`}${r.Extra ? ` (${String(r.Extra)})` : ''}`);
  if (latency) {
    process.stdout.write([
      `tasker bench:webhooks, latency apart from load: ${latency.posts_per_mode} POSTs per mode, one at a time, in alternating blocks of ${latency.block} (ABBA), outbox drained before each block`,
      '',
      '| | no subscription | 3 subscriptions (task.created, task.done) | added |',
      '| --- | ---: | ---: | ---: |',
      `| POST p50 | ${latency.p50_ms.none} ms | ${latency.p50_ms.three} ms | ${latency.p50_ms.added} ms (median of the block pairs: ${latency.paired_added_p50_ms} ms) |`,
      `| POST p90 | ${latency.p90_ms.none} ms | ${latency.p90_ms.three} ms | |`,
      '',
      `the outbox INSERT … SELECT alone (one event, 3 subscriptions, ${latency.outbox_insert_ms.samples} transactions): p50 ${latency.outbox_insert_ms.p50} ms, p99 ${latency.outbox_insert_ms.p99} ms`,
      `the delivery job's look for due rows (its plan, on fresh statistics): ${planText(latency.claim_plan).join('; ')}`,
      '',
    ].join('\n'));
  }
  if (!LOAD) return;
  process.stdout.write([
    `tasker bench:webhooks: wrk ${SECONDS} s at ${report.concurrency} connections, ${report.rounds} alternating rounds per mode, ${report.machine}, `
      + 'shipped default configuration (api.webhooks.allow_http and allow_private on, for the local receiver)',
    '',
    '| | no subscription | 3 subscriptions (task.created, task.done) | change |',
    '| --- | ---: | ---: | ---: |',
    `| POST p50 (mean of the rounds) | ${report.p50_ms.none} ms | ${report.p50_ms.three} ms | ${change(report.p50_ms.none, report.p50_ms.three)} |`,
    `| POST p99 (mean of the rounds) | ${report.p99_ms.none} ms | ${report.p99_ms.three} ms | ${change(report.p99_ms.none, report.p99_ms.three)} |`,
    `| accepted tasks/s | ${report.accepted_per_s.none} | ${report.accepted_per_s.three} | ${change(report.accepted_per_s.none, report.accepted_per_s.three)} |`,
    '',
    `the delivery job's look for due rows over the first round's backlog (its plan, on fresh statistics): ${planText(backlogPlan).join('; ')}`,
    '',
    `deliveries: ${report.deliveries_per_s}/s (mean of the rounds: ${rates.join(', ')}) to a local receiver answering 204, each drained for ${DRAIN_SECONDS} s from the backlog a round left`,
    '',
  ].join('\n'));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
