import assert from 'node:assert/strict';
import { Topology } from '../../protocol/topology';
import { Harness, Proc } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');

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
  let api: Proc;

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
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
        const msg = await ch.get(TOPOLOGY.deadLetter, { noAck: true });
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
    const queue = TOPOLOGY.endpointQueueName('worker', 'console1');
    const bad: [Buffer, string | undefined][] = [
      [Buffer.from('this is not json'), 'application/json'],
      [Buffer.from(JSON.stringify({ identifier: 'no-id' })), 'application/json'],
      [Buffer.from('80027d71002855026964710...', 'utf8'), 'application/python-pickle'],
      [Buffer.from(JSON.stringify({ id: 999998, identifier: 'x', type: 'backup', payload: null, endpoints: ['console1'], start_time: new Date().toISOString() })), 'application/json'], // wrong queue
    ];
    // A well-formed task the database does not have: the endpoint cannot tell, runs it, and the server
    // side refuses the result event (dead-lettered: the event, with the task id in it).
    const ghost = { id: 999999, identifier: 'ghost', type: 'worker', payload: { sleep: 0 }, endpoints: ['console1'], start_time: new Date().toISOString() };
    await h.withChannel(async (ch) => {
      for (const [body, contentType] of bad) ch.sendToQueue(queue, body, { persistent: true, contentType });
      ch.sendToQueue(queue, Buffer.from(JSON.stringify(ghost)), { persistent: true, contentType: 'application/json' });
    });
    const deadline = Date.now() + 15_000;
    let dead: Buffer[] = [];
    while (dead.length < bad.length + 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      dead = dead.concat(await deadLetters());
    }
    const texts = dead.map((b) => b.toString());
    const events = texts.filter((t) => t.includes('"kind":"result"')).map((t) => JSON.parse(t));
    assert.deepEqual(texts.filter((t) => !t.includes('"kind":"result"')).sort(), bad.map(([b]) => b.toString()).sort());
    assert.deepEqual(events.map((e) => [e.task_id, e.endpoint]), [[ghost.id, 'console1']]);
    assert.equal(console1.lines.filter((l) => l.msg === 'invalid message dead-lettered').length, bad.length);
    await api.waitForLog((l) => l.msg === 'response event for a task that does not exist' && l.taskId === ghost.id);
    await post('worker', 'after-garbage', { sleep: 0 }, ['console1', 'console2']);
    await h.checkInvariants(accepted, QUEUES);
    assert.equal(console1.child.exitCode, null);
  });

  it('dead-letters malformed response events and state requests; the API keeps running and stores nothing of them', async function () {
    const responses = await h.query('SELECT COUNT(*) AS n FROM task_response');
    const task = await post('worker', 'target', { sleep: 0 }, ['console1']);
    await h.waitForStatus('worker', 'target', ['DONE']);
    const now = new Date().toISOString();
    const forged = [
      'not json at all',
      JSON.stringify({ kind: 'result', task_id: task.id, endpoint: 'console1' }), // missing fields
      JSON.stringify({ kind: 'result', task_id: task.id, endpoint: 'console2', attempt: 1, start_time: now, end_time: now, errnr: 0 }), // not expected
      JSON.stringify({ kind: 'explode', task_id: task.id }),
    ];
    await h.withChannel(async (ch) => {
      for (const body of forged) ch.publish(TOPOLOGY.responsesExchange, 'event', Buffer.from(body), { persistent: true, contentType: 'application/json' });
      ch.publish(TOPOLOGY.responsesExchange, 'state', Buffer.from('{"kind":"state"}'), { contentType: 'application/json' });
    });
    const deadline = Date.now() + 15_000;
    let dead: Buffer[] = [];
    while (dead.length < forged.length + 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      dead = dead.concat(await deadLetters());
    }
    assert.equal(dead.length, forged.length + 1);
    // Refusals of one sender and reason are logged once, then counted (aggregated per interval), not a line each.
    assert.equal(api.lines.filter((l) => l.msg === 'invalid response message dead-lettered').length, 1);
    assert.ok(api.lines.some((l) => l.msg === 'response event refused: the task does not expect this endpoint' && l.endpoint === 'console2'));
    assert.ok(api.lines.some((l) => l.msg === 'invalid state request dead-lettered'));
    const after = await h.query('SELECT COUNT(*) AS n FROM task_response');
    assert.equal(Number(after[0].n), Number(responses[0].n) + 1);
    assert.equal(api.child.exitCode, null);
    await post('worker', 'after-bad-events', { sleep: 0 }, ['console1', 'console2']);
    await h.checkInvariants(accepted, QUEUES);
  });
});
