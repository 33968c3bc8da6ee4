import assert from 'node:assert/strict';
import { Harness, Proc } from '../support/harness';
import { parseMetrics, valueOf } from '../support/prometheus';
import { startMariadb, stopMariadb } from '../support/services';

const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];

/** MariaDB stopped and started under the running API and managers. */
describe('faults: MariaDB', function () {
  const h = new Harness({ waitTimeout: 60 });
  const accepted: { type: string; identifier: string }[] = [];
  let managers: Proc[] = [];
  let api: Proc;

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    await h.teardown();
  });

  async function post(identifier: string, sleep: number): Promise<void> {
    const res = await h.post('worker', { identifier, payload: { sleep }, endpoints: ENDPOINTS });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    accepted.push({ type: 'worker', identifier });
  }

  it('answers 503 quickly while it is down; the collector holds the results and stores them when it is back; nothing lost or doubled', async function () {
    // Handlers still running when the database goes away: their results must wait, not be dropped.
    for (let i = 0; i < 6; i++) await post(`before-${i}`, 2);
    for (const m of managers) await m.waitForLog((l) => l.msg === 'running handler', 10_000);
    try {
      await stopMariadb();
      // A hang would trip the client-side timeout rather than answer.
      const timeout = AbortSignal.timeout(10_000);
      const posted = await fetch(`${h.baseUrl}/worker`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: timeout,
        body: JSON.stringify({ identifier: 'during', payload: { sleep: 0 }, endpoints: ENDPOINTS }),
      });
      assert.equal(posted.status, 503);
      assert.equal(((await posted.json()) as any).error.code, 'database_unavailable');
      // Not ready, naming the database; alive all the same (a restart would not bring the database back).
      const ready = await fetch(`${h.baseUrl}/readyz`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(ready.status, 503);
      const readiness = (await ready.json()) as any;
      assert.equal(readiness.status, 'unready');
      assert.match(readiness.checks.database, /^down: /);
      assert.equal(readiness.checks.broker, 'up');
      assert.doesNotMatch(JSON.stringify(readiness), /ECONNREFUSED|127\.0\.0\.1|stack|SELECT/);
      assert.deepEqual(await h.get('healthz'), { status: 200, json: { status: 'ok' } });
      const scraped = await fetch(`${h.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(scraped.status, 200);
      const samples = parseMetrics(await scraped.text());
      assert.equal(valueOf(samples, 'tasker_database_up'), 0);
      assert.equal(valueOf(samples, 'tasker_broker_connected'), 1);
      const got = await fetch(`${h.baseUrl}/worker/before-0`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(got.status, 503);
      const body = (await got.json()) as any;
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message']);
      assert.doesNotMatch(JSON.stringify(body), /ECONNREFUSED|127\.0\.0\.1|stack/);
      // The managers, which never touch the database, finish and ack; their results wait with the collector.
      await api.waitForLog((l) => l.msg === 'database unavailable, retrying' && l.what === 'store events', 15_000, 'collector retry');
      for (const m of managers) {
        for (let i = 0; i < 6; i++) await m.waitForLog((l) => l.msg === 'task finished' && l.identifier === `before-${i}`, 15_000, 'task finished');
      }
    } finally {
      await startMariadb();
    }
    // Ready again once the pool reconnects, without a restart.
    let readyAgain: { status: number; json: any } = { status: 0, json: null };
    for (let i = 0; i < 120 && readyAgain.status !== 200; i++) {
      readyAgain = await h.get('readyz');
      if (readyAgain.status !== 200) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.deepEqual(readyAgain, { status: 200, json: { status: 'ready', checks: { database: 'up', migrations: 'current', broker: 'up' } } });
    assert.deepEqual(await h.get('healthz'), { status: 200, json: { status: 'ok' } });
    // Pools recover without restarts.
    for (let i = 0; i < 6; i++) await post(`after-${i}`, 0);
    await h.checkInvariants(accepted, QUEUES);
    // The task refused with 503 was never stored.
    assert.equal((await h.get('worker/during')).status, 404);
    const attempts = await h.query('SELECT MAX(attempts) AS n FROM task_response');
    assert.equal(Number(attempts[0].n), 1);
    for (const m of managers) {
      assert.equal(m.child.exitCode, null, `${m.name} exited`);
      assert.ok(!m.lines.some((l) => l.level === 'warn' || l.level === 'error'), `${m.name} noticed the database outage`);
    }
  });
});
