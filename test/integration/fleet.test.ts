import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Harness, Proc } from '../support/harness';

const ENDPOINTS = Array.from({ length: 100 }, (_v, i) => `node${String(i + 1).padStart(3, '0')}`);

/** Pids of processes with a TCP connection to this port, from `ss -tnp`. */
function pidsConnectedTo(port: number): Set<number> {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  return new Set([...out.matchAll(/pid=(\d+),/g)].map((m) => Number(m[1])));
}

/**
 * A fleet: 100 endpoint manager processes, as 100 servers would each run one, against one API. The
 * database sees the API's pool and nothing else, whatever the number of endpoints.
 */
describe('a fleet of 100 endpoint manager processes', function () {
  const h = new Harness({ waitTimeout: 30 });
  let managers: Proc[] = [];
  let peakConnections = 0;
  let sampler: NodeJS.Timeout | null = null;

  before(async function () {
    this.timeout(600_000);
    await h.setup(this);
    await h.startApi();
    const sample = async (): Promise<void> => {
      const rows = await h.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [h.id]);
      peakConnections = Math.max(peakConnections, Number(rows[0].n));
    };
    sampler = setInterval(() => { void sample().catch(() => undefined); }, 100);
    // Started ten at a time: a hundred Node.js processes starting at once would take the 2 cores for a while.
    for (let i = 0; i < ENDPOINTS.length; i += 10) {
      managers.push(...await Promise.all(ENDPOINTS.slice(i, i + 10).map((ep) => h.startManager(ep, ['worker'], { TASKER_LOG_LEVEL: 'debug' }))));
    }
  });

  after(async function () {
    this.timeout(300_000);
    if (sampler) clearInterval(sampler);
    managers = [];
    await h.teardown();
  });

  it('registers every endpoint through its events', async function () {
    const deadline = Date.now() + 60_000;
    let registered = 0;
    while (Date.now() < deadline) {
      const rows = await h.query(`SELECT COUNT(*) AS n FROM endpoint WHERE task_type = 'worker'`);
      registered = Number(rows[0].n);
      if (registered === ENDPOINTS.length) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(registered, ENDPOINTS.length);
  });

  it('broadcasts a task to all 100 and ends DONE with one response each', async function () {
    const created = await h.post('worker', { identifier: 'fleet-all', payload: { sleep: 0 } });
    assert.equal(created.status, 201);
    assert.equal(created.json.endpoints.length, ENDPOINTS.length);
    const done = await h.waitForStatus('worker', 'fleet-all', ['DONE'], 60_000);
    assert.equal(done.taskResponseList.length, ENDPOINTS.length);
    assert.deepEqual(done.task.responses, {
      expected: 100, received: 100, finished: 100, failed: 0, pending: 0, running: 0, succeeded: 100, missing: 0, cancelled: 0, queued: 0, skipped: 0,
    });
  });

  it('delivers a task for 3 of the 100 to those 3 only', async function () {
    const targets = ['node007', 'node050', 'node100'];
    const created = await h.post('worker', { identifier: 'fleet-three', payload: { sleep: 0 }, endpoints: targets });
    const done = await h.waitForStatus('worker', 'fleet-three', ['DONE'], 30_000);
    assert.deepEqual(done.taskResponseList.map((r: any) => r.endpoint).sort(), targets);
    const touched = managers.filter((m) => m.lines.some((l) => l.taskId === created.json.id)).map((m) => m.lines.find((l) => l.endpoint)?.endpoint);
    assert.deepEqual(touched.sort(), targets, 'endpoints that received the task');
  });

  it('keeps the database connections at the API\'s pool: the managers hold none', async function () {
    // The API's pool, and this test's own two connections (the sampler uses them).
    assert.ok(peakConnections > 0);
    assert.ok(peakConnections <= h.config.manager.db.pool_size + 2, `peak ${peakConnections} database connections`);
    const onDatabase = pidsConnectedTo(3306);
    const offenders = managers.filter((m) => onDatabase.has(m.child.pid!)).map((m) => m.name);
    assert.deepEqual(offenders, []);
    // The check itself sees connections: the API (a process of this harness) holds some.
    assert.ok(onDatabase.size > 0);
  });
});
