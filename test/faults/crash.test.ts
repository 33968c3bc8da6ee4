import assert from 'node:assert/strict';
import { deadLetterName, queueName } from '../../manager/topology';
import { Harness, Proc } from '../support/harness';

const MAX_ATTEMPTS = 3;

/** Managers that die, handlers that take their process down, and garbage on the queues. */
describe('faults: crashes and poison', function () {
  const h = new Harness({
    waitTimeout: 60,
    env: {
      TASKER_TASK_TYPES: '[worker, backup, crash]',
      TASKER_MANAGER__HANDLERS_DIR: 'test/handlers',
      TASKER_MANAGER__MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    },
  });
  const accepted: { type: string; identifier: string }[] = [];
  const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2', 'tasker.crash.console1'];
  let console1: Proc;

  before(async function () {
    await h.setup();
    await h.startApi();
    console1 = await h.startManager('console1', ['worker', 'crash']);
    await h.startManager('console2', ['worker']);
  });

  after(async function () {
    await h.teardown();
  });

  async function post(type: string, identifier: string, payload: unknown, endpoints: string[]): Promise<any> {
    const res = await h.post(type, { identifier, payload, endpoints });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    accepted.push({ type, identifier });
    return res.json;
  }

  async function deadLetters(): Promise<Buffer[]> {
    return h.withChannel(async (ch) => {
      const out: Buffer[] = [];
      for (;;) {
        const msg = await ch.get(deadLetterName('tasker'), { noAck: true });
        if (!msg) return out;
        out.push(msg.content);
      }
    });
  }

  it('runs a task again after its manager was killed mid-handler; one response row; DONE', async function () {
    const task = await post('worker', 'killed', { sleep: 2 }, ['console1', 'console2']);
    await console1.waitForLog((l) => l.msg === 'running handler' && l.taskId === task.id);
    assert.equal(await console1.stop('SIGKILL'), null);
    console1 = await h.startManager('console1', ['worker', 'crash']);
    await h.checkInvariants(accepted, QUEUES);
    const rows = await h.query('SELECT endpoint, attempts FROM task_response WHERE task_id = ? ORDER BY endpoint', [task.id]);
    assert.deepEqual(rows.map((r) => [r.endpoint, Number(r.attempts)]), [['console1', 2], ['console2', 1]]);
  });

  it('gives up on a handler that crashes the process every time: errnr 125, dead-lettered, the endpoint goes on', async function () {
    const task = await post('crash', 'poison', null, ['console1']);
    // Restarted after every crash, as pm2 would.
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      await console1.waitForLog((l) => l.msg === 'running handler' && l.taskId === task.id && l.attempt === attempt);
      assert.notEqual(await console1.exited, 0);
      console1 = await h.startManager('console1', ['worker', 'crash']);
    }
    const done = await h.waitForStatus('crash', 'poison', ['DONE']);
    assert.equal(done.taskResponseList[0].errnr, 125);
    assert.equal(done.taskResponseList[0].attempts, MAX_ATTEMPTS);
    assert.equal(done.task.responses.failed, 1);
    const dead = (await deadLetters()).map((b) => JSON.parse(b.toString()));
    assert.deepEqual(dead.map((m) => m.id), [task.id]);
    await post('worker', 'after-poison', { sleep: 0 }, ['console1', 'console2']);
    await h.checkInvariants(accepted, QUEUES);
    assert.equal(console1.child.exitCode, null);
  });

  it('dead-letters malformed messages published straight to an endpoint queue, and keeps running', async function () {
    const queue = queueName('tasker', 'worker', 'console1');
    const valid = { id: 999999, identifier: 'ghost', type: 'worker', payload: null, endpoints: ['console1'], start_time: new Date().toISOString() };
    const bad: [Buffer, string | undefined][] = [
      [Buffer.from('this is not json'), 'application/json'],
      [Buffer.from(JSON.stringify({ identifier: 'no-id' })), 'application/json'],
      [Buffer.from(JSON.stringify(valid)), 'application/json'], // a task id the database does not have
      [Buffer.from('80027d71002855026964710...', 'utf8'), 'application/python-pickle'],
      [Buffer.from(JSON.stringify({ ...valid, type: 'backup' })), 'application/json'], // wrong queue
    ];
    await h.withChannel(async (ch) => {
      for (const [body, contentType] of bad) ch.sendToQueue(queue, body, { persistent: true, contentType });
    });
    const deadline = Date.now() + 15_000;
    let dead: Buffer[] = [];
    while (dead.length < bad.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      dead = dead.concat(await deadLetters());
    }
    assert.deepEqual(dead.map((b) => b.toString()).sort(), bad.map(([b]) => b.toString()).sort());
    const logged = console1.lines.filter((l) => l.msg === 'invalid message dead-lettered'
      || l.msg === 'message names a task that does not exist; dead-lettered');
    assert.equal(logged.length, bad.length);
    await post('worker', 'after-garbage', { sleep: 0 }, ['console1', 'console2']);
    await h.checkInvariants(accepted, QUEUES);
    assert.equal(console1.child.exitCode, null);
  });
});
