import { performance } from 'node:perf_hooks';
import { projectRoot } from '../config/loader';
import { createDataSource, transaction } from '../api/storage/database';
import { claimCandidatesSql, WebhookStore } from '../api/storage/webhook-store';
import { sqlTime } from '../api/storage/sql-values';
import type { Harness } from '../test/support/harness';

/**
 * The added POST latency of 3 webhook subscriptions, measured apart from load: one client POSTing tasks one
 * after the other (each answer awaited), in blocks that alternate between no enabled subscription and 3
 * (ABBA order, so that a drift of the machine weighs on both alike), on one API. Before each block the
 * outbox is drained, so that a block pays for its own writes and deliveries, not the last one's. Then the
 * outbox's INSERT … SELECT alone, timed inside a transaction that is rolled back, and the plan of the
 * delivery job's look for due rows over the log the blocks left.
 */
export interface LatencyOptions {
  /** POSTs per mode, in all. */
  posts: number;
  /** POSTs per block. */
  block: number;
  endpoints: readonly string[];
  /** Seconds between refreshes of an API instance's knowledge of the subscriptions (api.webhooks.interval). */
  intervalS: number;
  log: (msg: string) => void;
}

export interface LatencyReport {
  posts_per_mode: number;
  block: number;
  p50_ms: { none: number; three: number; added: number };
  p90_ms: { none: number; three: number };
  /** The median over block pairs of (3's block median - none's block median). */
  paired_added_p50_ms: number;
  outbox_insert_ms: { p50: number; p99: number; samples: number };
  claim_plan: Record<string, unknown>[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const r3 = (n: number): number => Math.round(n * 1000) / 1000;

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** One call of the bench's API; an answer other than 2xx ends the bench with it. */
export async function call(h: Harness, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${h.baseUrl}${path}`, {
    method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function drained(h: Harness): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (Number((await h.query<{ n: number }>(`SELECT COUNT(*) AS n FROM webhook_delivery WHERE status = 'pending'`))[0].n) > 0) {
    if (Date.now() > deadline) throw new Error('the outbox did not drain within 5 minutes');
    await sleep(100);
  }
}

/** One POST, timed from the request to the whole answer read. */
async function timedPost(h: Harness, identifier: string, endpoints: readonly string[]): Promise<number> {
  const body = JSON.stringify({ identifier, payload: { sleep: 0 }, endpoints });
  const started = performance.now();
  const res = await fetch(`${h.baseUrl}/worker`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await res.arrayBuffer();
  const ms = performance.now() - started;
  if (res.status !== 201) throw new Error(`POST /worker answered ${res.status}`);
  return ms;
}

/** A rollback on purpose: the outbox rows written to be timed are not kept. */
class Rollback extends Error {}

/** The outbox's one statement per transaction, alone: `samples` single-event transactions, each rolled back. */
async function outboxInsertCost(h: Harness, samples: number): Promise<{ p50: number; p99: number; samples: number }> {
  const ds = createDataSource(h.config.manager.db, projectRoot());
  await ds.initialize();
  try {
    const store = new WebhookStore(ds);
    if (!(await store.refreshActive())) throw new Error('no enabled subscription: nothing to time');
    const [task] = await h.query<{ id: number; identifier: string }>('SELECT id, identifier FROM task ORDER BY id DESC LIMIT 1');
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      await transaction(ds, async (em) => {
        const started = performance.now();
        await store.enqueue(em, [{ taskId: Number(task.id), eventId: 1, event: 'task.created', taskType: 'worker', identifier: task.identifier, time: new Date() }]);
        times.push(performance.now() - started);
        throw new Rollback();
      }).catch((err: unknown) => { if (!(err instanceof Rollback)) throw err; });
    }
    return { p50: r3(quantile(times, 0.5)), p99: r3(quantile(times, 0.99)), samples };
  } finally {
    await ds.destroy();
  }
}

/**
 * The plan of the delivery job's look for due rows, on fresh statistics: MariaDB's `ANALYZE` statement runs
 * it and adds the rows each step really read (`r_rows`), which tells an index read cut short by the LIMIT
 * from a scan; EXPLAIN's estimate where that statement is not known (MySQL).
 */
export async function claimPlan(h: Harness): Promise<Record<string, unknown>[]> {
  await h.query('ANALYZE TABLE webhook_delivery');
  const params = [sqlTime(new Date())];
  return h.query<Record<string, unknown>>(`ANALYZE ${claimCandidatesSql(16)}`, params)
    .catch(() => h.query<Record<string, unknown>>(`EXPLAIN ${claimCandidatesSql(16)}`, params));
}

export async function measureLatency(h: Harness, url: string, o: LatencyOptions): Promise<LatencyReport> {
  const ids: number[] = [];
  for (let s = 0; s < 3; s++) ids.push((await call(h, 'POST', '/webhooks', { url, events: ['task.created', 'task.done'] })).id as number);
  const setEnabled = async (enabled: boolean): Promise<void> => {
    // Enabling answers once every instance knows; after disabling, the API's refresh (every interval) must
    // see that none is enabled before its write paths drop the outbox's statement.
    await Promise.all(ids.map((id) => call(h, 'PATCH', `/webhooks/${id}`, { enabled })));
    if (!enabled) await sleep(2 * o.intervalS * 1000 + 200);
  };
  const samples = { none: [] as number[], three: [] as number[] };
  const blockMedians = { none: [] as number[], three: [] as number[] };
  const blocks = Math.max(1, Math.ceil(o.posts / o.block));
  let enabled = true;
  let n = 0;
  // ABBA: none, 3, 3, none, none, 3, ...
  const order = Array.from({ length: 2 * blocks }, (_v, i) => (((i + 1) >> 1) % 2 === 0 ? 'none' : 'three') as 'none' | 'three');
  for (const mode of order) {
    // Drained while still enabled: a disabled subscription's deliveries would wait.
    await drained(h);
    if ((mode === 'three') !== enabled) {
      enabled = mode === 'three';
      await setEnabled(enabled);
    }
    const times: number[] = [];
    for (let i = 0; i < o.block; i++) times.push(await timedPost(h, `lat-${n++}`, o.endpoints));
    samples[mode].push(...times);
    blockMedians[mode].push(quantile(times, 0.5));
  }
  o.log(`latency: ${samples.none.length} POSTs with no subscription, ${samples.three.length} with 3, in ${2 * blocks} blocks of ${o.block}`);
  if (!enabled) await setEnabled(true);
  const outbox = await outboxInsertCost(h, o.posts);
  // The plan over the log the blocks left (thousands of delivered rows): a range of the due index, or a scan.
  const claim_plan = await claimPlan(h);
  for (const id of ids) await call(h, 'DELETE', `/webhooks/${id}`);
  const none50 = quantile(samples.none, 0.5);
  const three50 = quantile(samples.three, 0.5);
  const paired = blockMedians.three.map((t, i) => t - blockMedians.none[i]);
  return {
    posts_per_mode: samples.none.length, block: o.block,
    p50_ms: { none: r3(none50), three: r3(three50), added: r3(three50 - none50) },
    p90_ms: { none: r3(quantile(samples.none, 0.9)), three: r3(quantile(samples.three, 0.9)) },
    paired_added_p50_ms: r3(quantile(paired, 0.5)), outbox_insert_ms: outbox, claim_plan,
  };
}
