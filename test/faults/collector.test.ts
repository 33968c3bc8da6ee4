import assert from 'node:assert/strict';
import { Topology } from '../../protocol/topology';
import { Harness, Proc } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');
const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];

/** The server side away (every API process stopped, so no collector) while the endpoints work on. */
describe('faults: no collector running', function () {
  const h = new Harness({ waitTimeout: 60 });
  const accepted: { type: string; identifier: string }[] = [];
  let api: Proc;
  let managers: Proc[] = [];

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    await h.teardown();
  });

  it('keeps the results of tasks finished while the API is down, and stores them when it is back: nothing lost', async function () {
    for (let i = 0; i < 20; i++) {
      const identifier = `away-${i}`;
      const res = await h.post('worker', { identifier, payload: { sleep: 1 }, endpoints: ENDPOINTS });
      assert.equal(res.status, 201);
      accepted.push({ type: 'worker', identifier });
    }
    assert.equal(await api.stop(), 0);
    // The managers finish and ack every task: the broker took their results.
    for (const m of managers) {
      for (let i = 0; i < 20; i++) await m.waitForLog((l) => l.msg === 'task finished' && l.identifier === `away-${i}`, 30_000, `away-${i} finished`);
    }
    const waiting = await h.withChannel(async (ch) => (await ch.checkQueue(TOPOLOGY.eventsQueue.name)).messageCount);
    assert.ok(waiting > 0, 'results wait in the responses queue');
    const stored = await h.query(`SELECT COUNT(*) AS n FROM task_response WHERE status = 1`);
    assert.ok(Number(stored[0].n) < 40, 'some results were stored before the API stopped, but not all');
    api = await h.startApi();
    await h.checkInvariants(accepted, [...QUEUES, TOPOLOGY.eventsQueue.name]);
    const attempts = await h.query('SELECT MAX(attempts) AS n, COUNT(*) AS total FROM task_response');
    assert.deepEqual([Number(attempts[0].n), Number(attempts[0].total)], [1, 40]);
  });
});
