import assert from 'node:assert/strict';
import path from 'node:path';
import { projectRoot } from '../../config/loader';
import { Topology } from '../../protocol/topology';
import { ensureDebianPackage } from '../support/debian';
import { Harness, Proc } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');
const PYTHON = '/usr/bin/python3';
const SEED_ID = 'e7bd91d0-16ad-11e2-892e-0800200c9a66';

/**
 * An endpoint written in Python with pika from the protocol in the README alone
 * (test/endpoints/pika_endpoint.py), beside a tasker manager: the seed scenario, discovery, and a resent
 * copy that the Python endpoint checks with the server side.
 */
describe('an endpoint in another language (Python, pika)', function () {
  const h = new Harness();
  let py: Proc;

  before(async function () {
    await h.setup(this);
    await ensureDebianPackage('python3-pika', [PYTHON, ['-c', 'import pika']]);
    // Its queue as a version before the dead-letter policy created it: the Python endpoint declares it as it is.
    const legacy = TOPOLOGY.endpointQueue('worker', 'pyconsole');
    await h.withChannel(async (ch) => {
      await ch.assertQueue(legacy.name, { durable: true, arguments: legacy.legacyArguments });
      for (const b of legacy.bindings) await ch.bindQueue(legacy.name, b.exchange, b.key);
    });
    await h.startApi();
    await h.startManager('console1', ['worker']);
    py = startPython();
    await py.waitForLog((l) => l.msg === 'ready', 30_000, 'the Python endpoint to be ready');
  });

  after(async function () {
    await h.teardown();
  });

  function startPython(): Proc {
    const mq = h.config.manager.message_queue;
    return h.spawnExternal('pika endpoint', PYTHON, [path.join(projectRoot(), 'test', 'endpoints', 'pika_endpoint.py')], {
      TASKER_PY_HOST: mq.host, TASKER_PY_PORT: String(mq.port), TASKER_PY_VHOST: mq.virtual_host, TASKER_PY_USER: mq.username,
      TASKER_PY_PASSWORD: mq.password, TASKER_PY_PREFIX: mq.exchange, TASKER_PY_ENDPOINT: 'pyconsole', TASKER_PY_TASK_TYPE: 'worker',
    });
  }

  it('takes part in the seed scenario beside console1, and the task ends DONE', async function () {
    const created = await h.post('worker', { identifier: SEED_ID, payload: { foo: 'bar', sleep: 0.05 }, endpoints: ['console1', 'pyconsole'] });
    assert.equal(created.status, 201);
    const done = await h.waitForStatus('worker', SEED_ID, ['DONE']);
    const byEndpoint = new Map(done.taskResponseList.map((r: any) => [r.endpoint, r]));
    assert.deepEqual([...byEndpoint.keys()].sort(), ['console1', 'pyconsole']);
    const fromPython = byEndpoint.get('pyconsole') as any;
    assert.equal(fromPython.status, 1);
    assert.equal(fromPython.errnr, 0);
    assert.deepEqual(fromPython.payload, { python: true, echo: { foo: 'bar', sleep: 0.05 } });
    assert.deepEqual((byEndpoint.get('console1') as any).payload, { yeah: 1234123, yiya: 'yippie' });
  });

  it('is registered by its register event, so a task that lists no endpoints expects it', async function () {
    const created = await h.post('worker', { identifier: 'everyone', payload: { sleep: 0 } });
    assert.deepEqual(created.json.endpoints, ['console1', 'pyconsole']);
    const done = await h.waitForStatus('worker', 'everyone', ['DONE']);
    assert.equal(done.taskResponseList.length, 2);
  });

  it('asks the server side about a resent copy and acks it without running it again', async function () {
    const { json } = await h.get(`worker/${SEED_ID}`);
    await h.withChannel(async (ch) => {
      ch.sendToQueue(TOPOLOGY.endpointQueueName('worker', 'pyconsole'), Buffer.from(JSON.stringify({
        id: json.task.id, identifier: SEED_ID, type: 'worker', payload: null, endpoints: ['console1', 'pyconsole'], start_time: json.task.start_time,
      })), { persistent: true, contentType: 'application/json', headers: { 'x-tasker-resent': true } });
    });
    await py.waitForLog((l) => l.msg === 'state reply' && l.task_id === json.task.id && l.action === 'finished', 15_000, 'the state reply');
    assert.equal(py.lines.filter((l) => l.msg === 'task finished' && l.task_id === json.task.id).length, 1);
    const after = await h.get(`worker/${SEED_ID}`);
    assert.deepEqual(after.json.taskResponseList, json.taskResponseList);
  });

  it('stops cleanly on SIGTERM, and skips a task cancelled while it was away', async function () {
    assert.equal(await py.stop(), 0);
    const created = await h.post('worker', { identifier: 'called-off', payload: { sleep: 0 }, endpoints: ['pyconsole'] });
    assert.equal((await h.post('worker/called-off/cancel', '{}')).status, 200);
    py = startPython();
    await py.waitForLog((l) => l.msg === 'task cancelled; skipped' && l.task_id === created.json.id, 30_000, 'the cancelled task skipped');
    const { json } = await h.get('worker/called-off');
    assert.deepEqual([json.task.status, json.taskResponseList[0].state], ['CANCELLED', 'cancelled']);
    assert.ok(!py.lines.some((l) => l.msg === 'task finished' && l.task_id === created.json.id));
    assert.equal(await py.stop(), 0);
  });
});
