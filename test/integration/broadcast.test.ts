import assert from 'node:assert/strict';
import { Topology } from '../../protocol/topology';
import { Harness, Proc } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const SEED_ID = 'e7bd91d0-16ad-11e2-892e-0800200c9a66';

describe('broadcasting tasks to endpoints (RabbitMQ + MariaDB, real processes)', function () {
  const h = new Harness({ waitTimeout: 3, handlerTimeout: 3 });
  const managers = new Map<string, Proc>();

  before(async function () {
    await h.setup(this);
    await h.startApi();
    managers.set('console1', await h.startManager('console1'));
    managers.set('console2', await h.startManager('console2'));
  });

  after(async function () {
    await h.teardown();
  });

  it('runs the seed scenario: both endpoints respond and the task is DONE', async function () {
    const created = await h.post('worker', { identifier: SEED_ID, payload: { foo: 'bar' }, endpoints: ['console1', 'console2'] });
    assert.equal(created.status, 201);
    assert.equal(created.json.status, 'SENT');
    assert.equal(created.json.identifier, SEED_ID);
    assert.equal(created.json.type, 'worker');
    assert.equal(typeof created.json.id, 'number');
    assert.deepEqual(created.json.payload, { foo: 'bar' });
    assert.deepEqual(created.json.endpoints, ['console1', 'console2']);
    assert.match(created.json.start_time, ISO);

    const done = await h.waitForStatus('worker', SEED_ID, ['DONE']);
    assert.equal(done.task.id, created.json.id);
    assert.deepEqual(done.task.responses, {
      expected: 2, received: 2, finished: 2, failed: 0, pending: 0, running: 0, succeeded: 2, missing: 0, cancelled: 0, queued: 0, skipped: 0,
    });
    assert.match(done.task.end_time, ISO);
    const list = done.taskResponseList as any[];
    assert.deepEqual(list.map((r) => r.endpoint).sort(), ['console1', 'console2']);
    for (const r of list) {
      assert.equal(r.status, 1);
      assert.equal(r.state, 'succeeded');
      assert.equal(r.task_id, created.json.id);
      assert.equal(r.errnr, 0);
      assert.equal(r.errmsg, null);
      assert.deepEqual(r.payload, { yeah: 1234123, yiya: 'yippie' });
      assert.match(r.start_time, ISO);
      assert.match(r.last_modified_time, ISO);
      // The handler simulates 2 s of work by default.
      assert.ok(Date.parse(r.last_modified_time) - Date.parse(r.start_time) >= 1900);
    }
  });

  it('shows a handler that outlasts manager.receipt_delay as received (status 0) while it runs', async function () {
    assert.equal(h.config.manager.receipt_delay, 0.25);
    await h.post('worker', { identifier: 'receipt', payload: { sleep: 2 }, endpoints: ['console1'] });
    let running: any[] = [];
    const deadline = Date.now() + 1800;
    while (Date.now() < deadline && running.length === 0) {
      const res = await h.get('worker/receipt');
      running = (res.json.taskResponseList ?? []).filter((r: any) => r.status === 0);
      if (running.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(running.length, 1, 'no status 0 response while the handler ran');
    assert.equal(running[0].endpoint, 'console1');
    assert.equal(running[0].attempts, 1);
    const done = await h.waitForStatus('worker', 'receipt', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => [r.status, r.attempts]), [[1, 1]]);
    assert.equal(done.task.responses.received, 1);
  });

  it('counts handler errors and still completes: backup reports errnr 32', async function () {
    await h.post('backup', { identifier: 'backup-1', payload: { sleep: 0.05 }, endpoints: ['console1', 'console2'] });
    const done = await h.waitForStatus('backup', 'backup-1', ['DONE']);
    assert.equal(done.task.responses.failed, 2);
    for (const r of done.taskResponseList) {
      assert.equal(r.errnr, 32);
      assert.equal(r.errmsg, 'could not backup!');
    }
  });

  it('expects the registered endpoints when the task lists none', async function () {
    const created = await h.post('worker', { identifier: 'discovered', payload: { sleep: 0.05 } });
    assert.equal(created.status, 201);
    assert.deepEqual(created.json.endpoints, ['console1', 'console2']);
    const done = await h.waitForStatus('worker', 'discovered', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => r.endpoint).sort(), ['console1', 'console2']);
  });

  it('delivers a task that lists endpoints to those endpoints\' queues only', async function () {
    // console2 stopped: whatever reaches its queue stays there to be counted.
    assert.equal(await managers.get('console2')!.stop(), 0);
    const queueOf2 = TOPOLOGY.endpointQueueName('worker', 'console2');
    const depth = async (): Promise<number> => (await h.withChannel((ch) => ch.checkQueue(queueOf2))).messageCount;
    await h.post('worker', { identifier: 'subset', payload: { sleep: 0.05 }, endpoints: ['console1'] });
    const done = await h.waitForStatus('worker', 'subset', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => r.endpoint), ['console1']);
    assert.equal(await depth(), 0, 'a task for console1 reached console2');
    // The same path does deliver to console2 when it is a target.
    await h.post('worker', { identifier: 'subset-2', payload: { sleep: 0.05 }, endpoints: ['console2'] });
    for (const deadline = Date.now() + 5000; (await depth()) === 0 && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await depth(), 1);
    managers.set('console2', await h.startManager('console2'));
    const done2 = await h.waitForStatus('worker', 'subset-2', ['DONE']);
    assert.deepEqual(done2.taskResponseList.map((r: any) => r.endpoint), ['console2']);
    const rows = await h.query('SELECT COUNT(*) AS n FROM task_response WHERE task_id IN (?, ?)', [done.task.id, done2.task.id]);
    assert.equal(Number(rows[0].n), 2);
  });

  it('marks INCOMPLETE when a listed endpoint never received it, and DONE once it starts (never ran before)', async function () {
    const created = await h.post('worker', { identifier: 'late', payload: { sleep: 0.05 }, endpoints: ['console1', 'late1'] });
    assert.equal(created.status, 201);
    const incomplete = await h.waitForStatus('worker', 'late', ['INCOMPLETE', 'DONE'], 15_000);
    assert.equal(incomplete.task.status, 'INCOMPLETE');
    // Who has not answered is in the same answer.
    assert.deepEqual(incomplete.taskResponseList.map((r: any) => [r.endpoint, r.state, r.status]), [['console1', 'succeeded', 1], ['late1', 'missing', null]]);
    assert.equal(incomplete.task.responses.missing, 1);
    assert.equal(incomplete.task.end_time, null);

    // late1 has never run: its queue was declared by the API when the task was posted.
    await h.startManager('late1', ['worker']);
    const done = await h.waitForStatus('worker', 'late', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => r.endpoint).sort(), ['console1', 'late1']);
    assert.match(done.task.end_time, ISO);
  });

  it('finishes a response with its own errnr when the handler times out', async function () {
    await h.post('worker', { identifier: 'slow', payload: { sleep: 30 }, endpoints: ['console1'] });
    const done = await h.waitForStatus('worker', 'slow', ['DONE'], 15_000);
    assert.equal(done.taskResponseList[0].errnr, 124);
    assert.match(done.taskResponseList[0].errmsg, /timed out/);
  });

  it('asks the server side about a resent copy and does not run a finished task again', async function () {
    await h.post('worker', { identifier: 'again', payload: { sleep: 0.05 }, endpoints: ['console1', 'console2'] });
    const done = await h.waitForStatus('worker', 'again', ['DONE']);
    const before = await h.query('SELECT endpoint, attempts, last_modified_time FROM task_response WHERE task_id = ? ORDER BY endpoint', [done.task.id]);
    // Restarted, the managers remember nothing of what they finished: only the server side knows.
    for (const name of ['console1', 'console2']) {
      assert.equal(await managers.get(name)!.stop(), 0);
      managers.set(name, await h.startManager(name));
    }
    const runs = (p: Proc): number => p.lines.filter((l) => l.msg === 'running handler' && l.taskId === done.task.id).length;

    // The same message again, as the resend job sends it.
    const message = {
      id: done.task.id, identifier: 'again', type: 'worker', payload: { sleep: 0.05 },
      endpoints: ['console1', 'console2'], start_time: done.task.start_time,
    };
    await h.withChannel(async (ch) => {
      ch.publish(TOPOLOGY.taskExchange('worker'), '', Buffer.from(JSON.stringify(message)),
        { persistent: true, contentType: 'application/json', messageId: String(done.task.id), headers: { 'x-tasker-resent': true } });
    });
    for (const name of ['console1', 'console2']) {
      await managers.get(name)!.waitForLog((l) => l.msg === 'already finished; redelivery acked without running the handler' && l.taskId === done.task.id);
      assert.equal(runs(managers.get(name)!), 0);
    }
    const after = await h.query('SELECT endpoint, attempts, last_modified_time FROM task_response WHERE task_id = ? ORDER BY endpoint', [done.task.id]);
    assert.deepEqual(after, before);
  });

  it('stores a response once: a repeated result event changes nothing', async function () {
    await h.post('worker', { identifier: 'repeat', payload: { sleep: 0.05 }, endpoints: ['console1'] });
    const done = await h.waitForStatus('worker', 'repeat', ['DONE']);
    const before = await h.query('SELECT * FROM task_response WHERE task_id = ?', [done.task.id]);
    const taskBefore = await h.query('SELECT finished_count, received_count, failed_count, end_time FROM task WHERE id = ?', [done.task.id]);
    const now = new Date().toISOString();
    const again = { kind: 'result', task_id: done.task.id, endpoint: 'console1', attempt: 1, start_time: now, end_time: now, errnr: 7, errmsg: 'late copy', payload: { other: 1 } };
    await h.withChannel(async (ch) => {
      ch.publish(TOPOLOGY.responsesExchange, 'event', Buffer.from(JSON.stringify([again, again])), { persistent: true, contentType: 'application/json' });
    });
    // The events queue is empty once the collector took it; a duplicate is acked, not dead-lettered.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      const { messageCount } = await h.withChannel((ch) => ch.checkQueue(TOPOLOGY.eventsQueue.name));
      if (messageCount === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(await h.query('SELECT * FROM task_response WHERE task_id = ?', [done.task.id]), before);
    assert.deepEqual(await h.query('SELECT finished_count, received_count, failed_count, end_time FROM task WHERE id = ?', [done.task.id]), taskBefore);
    const { messageCount } = await h.withChannel((ch) => ch.checkQueue(TOPOLOGY.deadLetter));
    assert.equal(messageCount, 0);
  });

  it('does not run a second copy of a task beside the running one; the copy waits for it and is acked', async function () {
    const created = await h.post('worker', { identifier: 'twice', payload: { sleep: 1 }, endpoints: ['console1'] });
    const console1 = managers.get('console1')!;
    await console1.waitForLog((l) => l.msg === 'running handler' && l.taskId === created.json.id);
    const message = {
      id: created.json.id, identifier: 'twice', type: 'worker', payload: { sleep: 1 }, endpoints: ['console1'], start_time: created.json.start_time,
    };
    await h.withChannel(async (ch) => {
      ch.sendToQueue(TOPOLOGY.endpointQueueName('worker', 'console1'), Buffer.from(JSON.stringify(message)),
        { persistent: true, contentType: 'application/json', messageId: String(created.json.id) });
    });
    await console1.waitForLog((l) => l.msg === 'task is running here already; this copy waits for it' && l.taskId === created.json.id);
    const done = await h.waitForStatus('worker', 'twice', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => [r.status, r.attempts]), [[1, 1]]);
    assert.equal(console1.lines.filter((l) => l.msg === 'running handler' && l.taskId === created.json.id).length, 1);
    // Stopped, console1 would have given back anything it had not acked.
    assert.equal(await console1.stop(), 0);
    const { messageCount } = await h.withChannel((ch) => ch.checkQueue(TOPOLOGY.endpointQueueName('worker', 'console1')));
    assert.equal(messageCount, 0, 'the copy was not acked');
    managers.set('console1', await h.startManager('console1'));
  });
});
