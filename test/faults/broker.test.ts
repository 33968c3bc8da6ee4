import assert from 'node:assert/strict';
import { freePort, Harness, Proc } from '../support/harness';
import { closeAllRabbitConnections, startRabbitApp, stopRabbitApp } from '../support/services';

const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];

/** RabbitMQ outages with the real broker: stop_app/start_app and forced connection closes. */
describe('faults: RabbitMQ', function () {
  const h = new Harness({ waitTimeout: 60 });
  const accepted: { type: string; identifier: string }[] = [];
  let managers: Proc[] = [];
  let secondPort = 0;

  before(async function () {
    await h.setup(this);
    await h.startApi();
    secondPort = await freePort();
    await h.startApi(secondPort);
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    await h.teardown();
  });

  async function post(identifier: string, port = h.port): Promise<any> {
    const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: ENDPOINTS }, {}, port);
    assert.ok(res.status === 201, `POST ${identifier}: ${res.status} ${JSON.stringify(res.json)}`);
    accepted.push({ type: 'worker', identifier });
    return res.json;
  }

  /** How often each manager took task `id` off its queue (runs plus skipped redeliveries). */
  function deliveries(id: number): number[] {
    return managers.map((m) => m.lines.filter((l) => l.taskId === id
      && (l.msg === 'running handler' || l.msg === 'already finished; redelivery acked without running the handler')).length);
  }

  it('accepts tasks while RabbitMQ is down (CREATED) and sends each exactly once when it is back, with two API instances', async function () {
    const ids: number[] = [];
    try {
      await stopRabbitApp();
      for (let i = 0; i < 40; i++) {
        const task = await post(`down-${i}`, i % 2 ? secondPort : h.port);
        assert.equal(task.status, 'CREATED');
        ids.push(task.id);
      }
    } finally {
      await startRabbitApp();
    }
    await h.checkInvariants(accepted, QUEUES);
    // Both API instances ran the resend job over the same rows; SKIP LOCKED kept them apart.
    for (const id of ids) assert.deepEqual(deliveries(id), [1, 1], `task ${id} delivered ${deliveries(id)} times`);
    // A resend is the only copy ever delivered here: its run is the first attempt, not a second.
    const attempts = await h.query(`SELECT DISTINCT attempts FROM task_response WHERE task_id IN (${ids.map(() => '?').join(', ')})`, ids);
    assert.deepEqual(attempts.map((r) => Number(r.attempts)), [1]);
  });

  it('reconnects after the broker closes every connection, and goes on', async function () {
    await closeAllRabbitConnections();
    // A forced close emits 'close' without 'error': both must lead to a reconnect.
    for (const m of managers) await m.waitForLog((l) => l.msg === 'connection lost, reconnecting', 10_000, 'connection lost');
    for (let i = 0; i < 10; i++) await post(`after-close-${i}`);
    await h.checkInvariants(accepted, QUEUES);
  });

  it('delivers tasks queued while the managers were away, after a broker restart', async function () {
    const [m1, m2] = managers;
    assert.equal(await m1.stop(), 0);
    assert.equal(await m2.stop(), 0);
    for (let i = 0; i < 10; i++) await post(`queued-${i}`);
    try {
      await stopRabbitApp();
    } finally {
      await startRabbitApp();
    }
    // The API reconnected by itself; the queued persistent messages survived the restart.
    for (let i = 0; i < 5; i++) await post(`after-restart-${i}`);
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
    await h.checkInvariants(accepted, QUEUES);
  });
});
