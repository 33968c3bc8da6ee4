import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureWrk } from '../../bench/wrk';
import { projectRoot } from '../../config/loader';
import { Harness } from '../support/harness';
import { maxIn, sampleRss } from '../support/rss';

const run = promisify(execFile);

const OVERLOAD_S = 60;
/**
 * RSS may settle during the first seconds (queues filling, caches, JIT); from then on it must stay flat:
 * the last 20 s may set no high more than 10 % above those of 15-40 s. V8 lets the heap grow for a few tens
 * of seconds between full collections (a saw-tooth of about 190 to 280 MiB here), so a shorter reference
 * would take a tooth for growth.
 */
const REFERENCE_WINDOW: [number, number] = [15, 40];
/**
 * The old generation is capped, so that V8 collects it fully every few seconds instead of letting it grow
 * for tens of seconds: what remains between collections is what the process holds.
 */
const MAX_OLD_SPACE_MIB = 160;
const LAST_WINDOW: [number, number] = [OVERLOAD_S - 20, OVERLOAD_S + 1];
const MAX_GROWTH = 0.10;
/** A slow handler: two endpoints finish at most 2 × prefetch / sleep tasks a second, far below what POST accepts. */
const HANDLER_SLEEP_S = 0.05;
const ENDPOINTS = ['console1', 'console2'];
const CONNECTIONS = 128;

interface WrkCounts {
  requests: number;
  duration_us: number;
  ok: number;
  full: number;
  full_with_retry_after: number;
  other: number;
  errors: { connect: number; read: number; write: number; timeout: number };
}

async function overload(port: number, seconds: number): Promise<WrkCounts> {
  const script = path.join(projectRoot(), 'test', 'faults', 'backpressure.lua');
  const { stdout } = await run('wrk', ['-t', '2', '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '60s', '-s', script,
    `http://127.0.0.1:${port}`, '--', `bp${Date.now()}`, JSON.stringify(ENDPOINTS), String(HANDLER_SLEEP_S)],
  { timeout: (seconds + 120) * 1000, maxBuffer: 16 * 1024 * 1024 });
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  return JSON.parse(line.slice('WRK_RESULT '.length)) as WrkCounts;
}

/**
 * The standalone all-in-one process (SQLite, in-process queues; no shared service) under a minute of
 * overload from wrk: POST answers 503 with Retry-After once the in-process backlog is full, memory stays
 * flat, and every task that got a 2xx is stored and ends DONE.
 */
describe('faults: standalone backpressure under overload', function () {
  const h = new Harness({ backend: 'standalone', waitTimeout: 600, env: { TASKER_LOG_LEVEL: 'warn' }, nodeArgs: [`--max-old-space-size=${MAX_OLD_SPACE_MIB}`] });

  before(async function () {
    await ensureWrk();
    await h.setup();
  });

  after(async function () {
    await h.teardown();
  });

  it(`keeps RSS flat for ${OVERLOAD_S} s of overload, answers 503 + Retry-After when full, and finishes every accepted task`, async function () {
    const [proc] = await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker'] })));
    const pid = proc.child.pid as number;
    const rss = sampleRss(pid);
    let counts: WrkCounts;
    try {
      counts = await overload(h.port, OVERLOAD_S);
    } finally {
      rss.stop();
    }
    const seconds = counts.duration_us / 1e6;
    const reference = maxIn(rss.samples, ...REFERENCE_WINDOW);
    const last = maxIn(rss.samples, ...LAST_WINDOW);
    const summary = {
      accepted_per_s: Math.round(counts.ok / seconds), refused_503_per_s: Math.round(counts.full / seconds),
      rss_mib: { start: Math.round(rss.samples[0].mib), max_15_40s: Math.round(reference), last_20s_max: Math.round(last) },
      counts,
    };
    process.stdout.write(`      backpressure: ${JSON.stringify(summary)}\n`);
    assert.deepEqual(counts.errors, { connect: 0, read: 0, write: 0, timeout: 0 }, 'every request got an answer');
    assert.equal(counts.other, 0, 'answers other than 2xx and 503');
    assert.ok(counts.full > 0, 'the backlog never filled: no overload?');
    assert.equal(counts.full_with_retry_after, counts.full, 'every 503 is backlog_full with Retry-After');
    assert.ok(last <= reference * (1 + MAX_GROWTH), `RSS grew from ${reference.toFixed(1)} MiB to ${last.toFixed(1)} MiB`);

    // A 503 stored nothing, a 2xx stored its task: as many tasks as 2xx answers, but for the requests in
    // flight when wrk stopped (it counts no answer of those), at most one per connection. Every stored
    // task ends DONE with one finished response per endpoint.
    const deadline = Date.now() + 300_000;
    for (;;) {
      const rows = await h.query<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM task GROUP BY status');
      const byStatus = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
      const stored = rows.reduce((a, r) => a + Number(r.n), 0);
      assert.ok(stored >= counts.ok && stored <= counts.ok + CONNECTIONS, `${stored} tasks stored for ${counts.ok} 2xx answers: ${JSON.stringify(byStatus)}`);
      if ((byStatus.DONE ?? 0) === stored) break;
      if (Date.now() > deadline) assert.fail(`not every accepted task DONE: ${JSON.stringify(byStatus)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const wrong = await h.query(`SELECT t.id FROM task t WHERE t.expected_count <> ${ENDPOINTS.length}
      OR (SELECT COUNT(*) FROM task_response r WHERE r.task_id = t.id AND r.status = 1) <> t.expected_count LIMIT 5`);
    assert.deepEqual(wrong, [], 'tasks without exactly one finished response per endpoint');
    const responses = await h.query<{ n: number }>('SELECT COUNT(*) AS n FROM task_response');
    const tasks = await h.query<{ n: number }>('SELECT COUNT(*) AS n FROM task');
    assert.equal(Number(responses[0].n), Number(tasks[0].n) * ENDPOINTS.length);
  });
});

/** The bound at small scale, deterministic: a handler that does not finish, so the queue stays full. */
describe('faults: standalone backpressure, one full queue', function () {
  const LIMIT = 10;
  const h = new Harness({
    backend: 'standalone', waitTimeout: 600, handlerTimeout: 120,
    env: { TASKER_MANAGER__IN_PROCESS_BACKLOG: String(LIMIT), TASKER_MANAGER__MESSAGE_QUEUE__PREFETCH: '1' },
  });

  before(async function () {
    await h.setup();
    await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker'] })));
  });

  after(async function () {
    await h.teardown();
  });

  it('answers 503 backlog_full with Retry-After and stores nothing once the queue is full; a repeat is still 200; other queues take tasks', async function () {
    const accepted: string[] = [];
    let refused: { identifier: string; res: Response; json: any } | null = null;
    for (let i = 0; i < LIMIT + 5 && !refused; i++) {
      const identifier = `held-${i}`;
      const res = await fetch(`${h.baseUrl}/worker`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ identifier, payload: { sleep: 100 }, endpoints: ['console1'] }),
      });
      const json = await res.json();
      if (res.status === 201) accepted.push(identifier);
      else refused = { identifier, res, json };
    }
    assert.ok(refused, 'never refused');
    // The queue holds LIMIT; one more may be out with the manager (prefetch 1).
    assert.ok(accepted.length >= LIMIT && accepted.length <= LIMIT + 1, `${accepted.length} accepted before the first 503`);
    assert.equal(refused.res.status, 503);
    assert.equal(refused.res.headers.get('retry-after'), '1');
    assert.equal(refused.json.error.code, 'backlog_full');
    assert.equal((await h.get(`worker/${refused.identifier}`)).status, 404, 'a 503 stored nothing');
    const repeat = await h.post('worker', { identifier: accepted[0], payload: { sleep: 100 }, endpoints: ['console1'] });
    assert.equal(repeat.status, 200, 'a repeat of a stored task is answered as such, full or not');
    assert.equal((await h.post('worker', { identifier: 'elsewhere', payload: { sleep: 0 }, endpoints: ['console2'] })).status, 201);
    await h.waitForStatus('worker', 'elsewhere', ['DONE']);
  });
});
