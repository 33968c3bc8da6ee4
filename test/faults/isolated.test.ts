import assert from 'node:assert/strict';
import { Harness, Proc } from '../support/harness';
import { isAlive, misbehavingPid } from '../support/processes';
import { closeAllRabbitConnections } from '../support/services';

const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The fault suites' promises with handlers isolated in worker processes (`manager.isolation: process`, the
 * shipped default; the other fault suites run them in the managers' own processes): a manager killed while
 * its workers run handlers, and the broker closing every connection while isolated runs are under way.
 */
describe('faults: isolated handler runs', function () {
  const h = new Harness({ waitTimeout: 60, env: { TASKER_MANAGER__ISOLATION: 'process', TASKER_MANAGER__HEARTBEAT_INTERVAL: '1' } });
  const accepted: { type: string; identifier: string }[] = [];
  let managers: Proc[] = [];

  before(async function () {
    await h.setup(this);
    await h.startApi();
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    await h.teardown();
  });

  async function post(identifier: string, payload: unknown): Promise<any> {
    const res = await h.post('worker', { identifier, payload, endpoints: ENDPOINTS });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    accepted.push({ type: 'worker', identifier });
    return res.json;
  }

  it('runs a task again after its manager was killed mid-handler; the killed run\'s worker goes too; one row each; DONE', async function () {
    // `exit: 0` after the sleep: harmless, but it makes the handler name its process first.
    const task = await post('killed-isolated', { sleep: 3, exit: 0 });
    const pid = await misbehavingPid(h, 'killed-isolated', 'console1');
    assert.notEqual(pid, managers[0].child.pid, 'the handler runs in a worker, not in the manager');
    assert.equal(await managers[0].stop('SIGKILL'), null);
    for (const until = Date.now() + 10_000; isAlive(pid); await sleep(50)) assert.ok(Date.now() < until, `worker ${pid} outlived its manager by 10 s`);
    managers[0] = await h.startManager('console1', ['worker']);
    await h.checkInvariants(accepted, QUEUES);
    const rows = await h.query('SELECT endpoint, attempts FROM task_response WHERE task_id = ? ORDER BY endpoint', [task.id]);
    assert.deepEqual(rows.map((r) => [r.endpoint, Number(r.attempts)]), [['console1', 2], ['console2', 1]]);
  });

  it('finishes every task once after the broker closed every connection while isolated runs were under way', async function () {
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) ids.push((await post(`closed-${i}`, { sleep: 2 + (i % 3) * 0.5 })).id);
    await Promise.all(managers.map((m) => m.waitForLog((l) => l.msg === 'running handler' && ids.includes(Number(l.taskId)), 20_000, 'a run under way')));
    await closeAllRabbitConnections(h.config.manager.message_queue.virtual_host);
    for (const m of managers) await m.waitForLog((l) => l.msg === 'connection lost, reconnecting', 10_000, 'connection lost');
    await h.checkInvariants(accepted, QUEUES);
    const rows = await h.query<{ task_id: number; endpoint: string; errnr: number }>(
      `SELECT task_id, endpoint, errnr FROM task_response WHERE task_id IN (${ids.map(() => '?').join(', ')})`, ids);
    assert.equal(rows.length, ids.length * ENDPOINTS.length, 'one row per task and endpoint');
    assert.deepEqual([...new Set(rows.map((r) => Number(r.errnr)))], [0], 'every run succeeded');
    for (const m of managers) assert.equal(m.child.exitCode, null, 'the managers kept running');
  });
});
