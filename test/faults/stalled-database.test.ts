import assert from 'node:assert/strict';
import type { DataSource } from 'typeorm';
import { createDataSource, guardDb, isTransientDbError, limitDbCalls, transaction } from '../../api/storage/database';
import { DatabaseUnavailableError } from '../../lib/errors';
import { Harness, Proc } from '../support/harness';
import { PrivateMariadb } from '../support/private-mariadb';
import { TLS_OFF } from '../../config/schema';

const ENDPOINTS = ['console1', 'console2'];
const QUEUES = ENDPOINTS.map((e) => `tasker.worker.${e}`);
/** manager.db.connect_timeout (the default) and the margin the answers must come within beyond it. */
const CONNECT_TIMEOUT_MS = 3000;
const MARGIN_MS = 2000;
const BOUND_MS = CONNECT_TIMEOUT_MS + MARGIN_MS;
/** Longer than every limit of the API (query_timeout 10 s), so that each of them fires during the stall. */
const STALL_MS = 18_000;

interface Answer {
  status: number;
  ms: number;
  json: any;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * MariaDB frozen with SIGSTOP: connections stay open and nothing answers (unlike a stopped server, which
 * refuses at once). A server of the test's own: the shared one is never stalled.
 */
describe('faults: a stalled MariaDB (SIGSTOP)', function () {
  const db = new PrivateMariadb();
  let h: Harness;
  let api: Proc;
  let managers: Proc[] = [];
  const accepted: { type: string; identifier: string }[] = [];

  before(async function () {
    await db.start();
    h = new Harness({ waitTimeout: 120, env: { TASKER_TEST_DB_PORT: String(db.port) } });
    await h.setup(this);
    api = await h.startApi();
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    try {
      db.resume();
    } catch {
      // not running
    }
    try {
      await h?.teardown();
    } finally {
      await db.destroy();
    }
  });

  async function call(method: 'GET' | 'POST', pathname: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const started = Date.now();
    // A hang trips this rather than the test's own timeout; it is far beyond the bound asserted.
    const res = await fetch(`${h.baseUrl}/${pathname}`, {
      method, signal: AbortSignal.timeout(30_000),
      ...(body === undefined ? { headers } : { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const json = await res.json();
    return { status: res.status, ms: Date.now() - started, json };
  }

  async function post(identifier: string, sleepS = 0): Promise<Answer> {
    const answer = await call('POST', 'worker', { identifier, payload: { sleep: sleepS }, endpoints: ENDPOINTS });
    if (answer.status === 201 || answer.status === 200) accepted.push({ type: 'worker', identifier });
    return answer;
  }

  function assertUnavailable(answers: Answer[], what: string): number {
    for (const a of answers) {
      assert.equal(a.status, 503, `${what}: ${JSON.stringify(a.json)}`);
      assert.equal(a.json.error.code, 'database_unavailable', what);
      assert.ok(a.ms <= BOUND_MS, `${what} answered in ${a.ms} ms, over ${BOUND_MS} ms`);
    }
    return Math.max(...answers.map((a) => a.ms));
  }

  it('answers 503 within connect_timeout + 2 s while it stalls, backs off, and resumes by itself with nothing lost or doubled', async function () {
    for (let i = 0; i < 5; i++) assert.equal((await post(`before-${i}`)).status, 201);
    for (let i = 0; i < 5; i++) await h.waitForStatus('worker', `before-${i}`, ['DONE']);

    // A steady trickle of POSTs through all of it: each answered within the bound, 2xx or 503.
    const trickle: Answer[] = [];
    let trickling = true;
    const trickler = (async () => {
      for (let i = 0; trickling; i++) {
        trickle.push(await post(`trickle-${i}`));
        await sleep(100);
      }
    })();

    // Handlers still running when the database stalls: their results arrive during the stall.
    for (let i = 0; i < 4; i++) assert.equal((await post(`running-${i}`, 4)).status, 201);
    for (const m of managers) {
      for (let i = 0; i < 4; i++) await m.waitForLog((l) => l.msg === 'running handler' && l.identifier === `running-${i}`, 15_000, 'running handler');
    }

    const pids = [api, ...managers].map((p) => p.child.pid);
    const trickleBefore = trickle.length;
    await db.pause();
    const pausedAt = Date.now();
    let worst = 0;
    try {
      await sleep(200);
      worst = Math.max(worst, assertUnavailable([await post('during-single')], 'a POST'));
      worst = Math.max(worst, assertUnavailable([await call('GET', 'worker/before-0')], 'a GET'));
      // A long poll and event streams: their first reads are bounded the same way.
      worst = Math.max(worst, assertUnavailable([await call('GET', 'worker/before-1?wait=20')], 'a long poll'));
      worst = Math.max(worst, assertUnavailable(await Promise.all([
        call('GET', 'worker/before-2/events', undefined, { accept: 'text/event-stream' }),
        call('GET', 'events', undefined, { accept: 'text/event-stream' }),
      ]), 'an event stream'));
      const ready = await call('GET', 'readyz');
      assert.equal(ready.status, 503);
      assert.match(ready.json.checks.database, /^down: /);
      assert.ok(ready.ms <= BOUND_MS, `readyz answered in ${ready.ms} ms`);
      // Many at once: the last of a queue behind the stalled pool must answer in time as well.
      const burst = async (round: string): Promise<void> => {
        const answers = await Promise.all(Array.from({ length: 20 }, (_v, i) => (i % 2 === 0
          ? post(`during-${round}-${i}`) : call('GET', `worker/before-${i % 5}`))));
        worst = Math.max(worst, assertUnavailable(answers, `one of 20 concurrent requests (${round})`));
      };
      await burst('early');
      // After the statement limit (query_timeout) has closed the stuck connections, and new ones hang in their handshake.
      await sleep(Math.max(0, 11_000 - (Date.now() - pausedAt)));
      await burst('late');
      await api.waitForLog((l) => l.msg === 'database unavailable, retrying' && l.what === 'store events', 15_000, 'collector retry');
      // The results of the running handlers were published meanwhile: the managers do not need the database.
      for (const m of managers) {
        for (let i = 0; i < 4; i++) await m.waitForLog((l) => l.msg === 'task finished' && l.identifier === `running-${i}`, 15_000, 'task finished');
      }
      await sleep(Math.max(0, STALL_MS - (Date.now() - pausedAt)));
    } finally {
      db.resume();
    }
    const resumedAt = Date.now();
    const during = trickle.slice(trickleBefore);
    for (const a of during) {
      assert.ok([201, 503].includes(a.status), `trickle answered ${a.status}: ${JSON.stringify(a.json)}`);
      assert.ok(a.ms <= BOUND_MS, `a trickle POST answered in ${a.ms} ms`);
    }
    // One POST at a time, each taking up to connect_timeout: a handful over the stall.
    assert.ok(during.filter((a) => a.status === 503).length >= 3, `the trickle went on during the stall: ${JSON.stringify(during.map((a) => [a.status, a.ms]))}`);

    // Ready again without a restart.
    let ready = await call('GET', 'readyz');
    while (ready.status !== 200 && Date.now() - resumedAt < 60_000) {
      await sleep(200);
      ready = await call('GET', 'readyz');
    }
    assert.equal(ready.status, 200, JSON.stringify(ready.json));
    const recoveredMs = Date.now() - resumedAt;
    await sleep(1000);
    trickling = false;
    await trickler;
    assert.ok(trickle.slice(-5).every((a) => a.status === 201), `POSTs after the stall: ${JSON.stringify(trickle.slice(-5).map((a) => a.status))}`);
    for (let i = 0; i < 5; i++) assert.equal((await post(`after-${i}`)).status, 201);

    await h.checkInvariants(accepted, QUEUES);
    // The results published during the stall were stored: those tasks are DONE (checked above) with both results.
    const running = await h.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier LIKE 'running-%' AND r.status = 1`);
    assert.equal(Number(running[0].n), 8);
    // No handler ran twice: nothing was redelivered or resent to an endpoint that had answered.
    const attempts = await h.query<{ n: number }>('SELECT MAX(attempts) AS n FROM task_response');
    assert.equal(Number(attempts[0].n), 1);
    // Nobody was restarted.
    for (const [i, p] of [api, ...managers].entries()) {
      assert.equal(p.child.exitCode, null, `${p.name} exited`);
      assert.equal(p.child.pid, pids[i]);
    }
    // The periodic jobs noticed once and resumed.
    const failed = api.lines.filter((l) => l.msg === 'periodic job failed; retrying with backoff');
    assert.ok(failed.length > 0, 'the periodic jobs noticed the stall');
    assert.equal(failed.length, new Set(failed.map((l) => l.job)).size, 'a job logged its failure more than once in one outage');
    await api.waitForLog((l) => l.msg === 'periodic job recovered', 30_000, 'periodic job recovered');
    const maxTrickle = Math.max(...during.map((a) => a.ms));
    console.log(`      stalled ${STALL_MS} ms: worst 503 answer ${worst} ms (trickle ${maxTrickle} ms, ${during.length} POSTs), ready again ${recoveredMs} ms after SIGCONT`);
  });
});

/** The pool's own limits, on a DataSource of the test's (no API process): what the answers above rest on. */
describe('faults: the database pool under a stalled MariaDB', function () {
  const db = new PrivateMariadb();
  let ds: DataSource;

  before(async function () {
    await db.start();
    ds = createDataSource({
      uri: `mysql://root@127.0.0.1:${db.port}/mysql`, verbose: false, admin_uri: '', pool_size: 2, connect_timeout: 1, query_timeout: 2, tls: TLS_OFF,
    }, '/tmp');
    await ds.initialize();
  });

  after(async function () {
    try {
      db.resume();
    } catch {
      // not running
    }
    if (ds?.isInitialized) await ds.destroy();
    await db.destroy();
  });

  async function settle(p: Promise<unknown>): Promise<{ ms: number; err: unknown }> {
    const started = Date.now();
    try {
      await p;
      return { ms: Date.now() - started, err: null };
    } catch (err) {
      return { ms: Date.now() - started, err };
    }
  }

  it('ends every call within its limit, closes stuck connections, and serves again once the server wakes', async function () {
    // Both pool connections exist and are idle, as in a running API.
    await Promise.all([ds.query('SELECT SLEEP(0.2)'), ds.query('SELECT SLEEP(0.2)')]);
    await db.pause();
    try {
      // An idle connection is taken at once; its statement gets no answer and is given up at query_timeout.
      const first = await settle(ds.query('SELECT 1'));
      assert.ok(isTransientDbError(first.err), String(first.err));
      assert.ok(first.ms >= 1900 && first.ms <= 3000, `statement given up after ${first.ms} ms`);
      // Many callers at once, more than the pool holds: each ends by its acquire or statement limit, none waits
      // behind the others for longer.
      const many = await Promise.all(Array.from({ length: 12 }, () => settle(ds.query('SELECT 1'))));
      for (const r of many) {
        assert.ok(isTransientDbError(r.err), String(r.err));
        assert.ok(r.ms <= 3000, `a call ended after ${r.ms} ms`);
      }
      // A transaction, with its BEGIN and COMMIT: ended the same way.
      const tx = await settle(transaction(ds, (em) => em.query('SELECT 1')));
      assert.ok(isTransientDbError(tx.err), String(tx.err));
      assert.ok(tx.ms <= 3000, `a transaction ended after ${tx.ms} ms`);
      // A request's call: 503 at its own limit, whatever the pool does.
      const guarded = await settle(limitDbCalls(500, () => guardDb(() => ds.query('SELECT 1'))));
      assert.ok(guarded.err instanceof DatabaseUnavailableError);
      assert.ok(guarded.ms <= 1000, `a request's call ended after ${guarded.ms} ms`);
      // No stuck connection went back to the pool.
      const pool = (ds.driver as unknown as { pool: { pool: { _freeConnections: { length: number } } } }).pool.pool;
      assert.equal(pool._freeConnections.length, 0);
    } finally {
      db.resume();
    }
    const deadline = Date.now() + 30_000;
    let rows: unknown = null;
    while (rows === null && Date.now() < deadline) {
      rows = await ds.query('SELECT 7 AS n').catch(() => null);
    }
    assert.deepEqual(rows, [{ n: 7 }]);
  });
});
