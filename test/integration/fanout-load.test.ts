import assert from 'node:assert/strict';
import { freePort, Harness, storedTimeMs } from '../support/harness';

const ENDPOINTS = Array.from({ length: 20 }, (_v, i) => `load${String(i + 1).padStart(2, '0')}`);
const TASKS = 200;
const CONCURRENCY = 20;

/**
 * Twenty endpoint manager processes finishing the same 200 tasks at the same moment, and two API
 * processes whose collectors store the results side by side: every task must end DONE with exactly
 * one response per endpoint (the original could leave a task SENT forever here).
 */
describe('20 endpoints finishing 200 tasks at once', function () {
  const h = new Harness();
  let peakConnections = 0;
  let sampler: NodeJS.Timeout | null = null;
  let secondPort = 0;

  before(async function () {
    await h.setup(this);
    // Two API processes: two collectors compete for the response events.
    await h.startApi();
    secondPort = await freePort();
    await h.startApi(secondPort);
    // In-process handlers (manager.isolation none): the suite is about the collectors and the database's
    // connections under 20 manager processes on 2 cores; 20 worker pools beside them (4,000 runs over IPC
    // in a burst) take enough CPU that the API's database waits pass connect_timeout (503). Isolation has
    // its own suite (isolation.test.ts).
    await Promise.all(ENDPOINTS.map((ep, i) => h.startManager(ep, ['worker'], {
      TASKER_MANAGER__ISOLATION: 'none', ...i % 2 ? { TASKER_MANAGER__RECEIPT_DELAY: '0' } : {},
    })));
    const sample = async (): Promise<void> => {
      const rows = await h.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [h.id]);
      peakConnections = Math.max(peakConnections, Number(rows[0].n));
    };
    sampler = setInterval(() => { void sample().catch(() => undefined); }, 100);
  });

  after(async function () {
    if (sampler) clearInterval(sampler);
    await h.teardown();
  });

  it('ends every task DONE with exactly one finished response per (task, endpoint)', async function () {
    const ids: string[] = Array.from({ length: TASKS }, (_v, i) => `load-${i}`);
    let next = 0;
    const statuses: number[] = [];
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < ids.length) {
        const identifier = ids[next++];
        const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: ENDPOINTS });
        statuses.push(res.status);
      }
    }));
    assert.deepEqual([...new Set(statuses)], [201]);

    const deadline = Date.now() + 90_000;
    let open = -1;
    while (Date.now() < deadline) {
      const rows = await h.query(`SELECT COUNT(*) AS n FROM task WHERE status <> 'DONE'`);
      open = Number(rows[0].n);
      if (open === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(open, 0, 'tasks not DONE');

    const tasks = await h.query('SELECT COUNT(*) AS n, MIN(finished_count) AS lo, MAX(finished_count) AS hi, SUM(end_time IS NULL) AS open FROM task');
    assert.equal(Number(tasks[0].n), TASKS);
    assert.equal(Number(tasks[0].lo), ENDPOINTS.length);
    assert.equal(Number(tasks[0].hi), ENDPOINTS.length);
    assert.equal(Number(tasks[0].open), 0);
    const responses = await h.query(
      'SELECT COUNT(*) AS n, COUNT(DISTINCT task_id, endpoint) AS pairs, SUM(status = 1) AS finished, MAX(attempts) AS attempts FROM task_response');
    assert.equal(Number(responses[0].n), TASKS * ENDPOINTS.length);
    assert.equal(Number(responses[0].pairs), TASKS * ENDPOINTS.length);
    assert.equal(Number(responses[0].finished), TASKS * ENDPOINTS.length);
    assert.equal(Number(responses[0].attempts), 1);
    // Only the APIs hold database connections (their pools, plus this test's own two): none per endpoint.
    assert.ok(peakConnections <= 2 * h.config.manager.db.pool_size + 2, `peak ${peakConnections} connections`);
  });

  it('wakes the clients waiting on either API instance, whichever of them stored the end', async function () {
    const identifiers = Array.from({ length: 10 }, (_v, i) => `awaited-${i}`);
    const bases = [h.baseUrl, `http://127.0.0.1:${secondPort}`];
    for (const identifier of identifiers) {
      assert.equal((await h.post('worker', { identifier, payload: { sleep: 0.5 }, endpoints: ENDPOINTS.slice(0, 5) })).status, 201);
    }
    // Each task waited on at both instances: only one collector stores its end, so one of the two
    // waiters learns of it from the other instance's notice.
    const answers = await Promise.all(identifiers.flatMap((identifier) => bases.map(async (base) => {
      const res = await fetch(`${base}/worker/${identifier}?wait=30`);
      return { identifier, at: Date.now(), status: res.status, json: await res.json() as any };
    })));
    const ends = new Map((await h.query<{ identifier: string; end_time: unknown }>(
      'SELECT identifier, end_time FROM task WHERE identifier LIKE ?', ['awaited-%']))
      .map((r) => [r.identifier, storedTimeMs(r.end_time)]));
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.equal(a.json.task.status, 'DONE', `${a.identifier} answered before its end`);
      // Far sooner than the 30 s offered: a notice woke it.
      assert.ok(a.at - ends.get(a.identifier)! < 10_000, `${a.identifier} answered ${a.at - ends.get(a.identifier)!} ms after its end`);
    }
  });
});
