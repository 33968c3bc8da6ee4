import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GetMessage } from 'amqplib';
import { projectRoot } from '../../config/loader';
import { publicKeyLine, SIGNATURE_HEADER } from '../../protocol/task-signature';
import { Topology } from '../../protocol/topology';
import { ERRNR_TASK_REFUSED } from '../../protocol/wire';
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

/**
 * The Python endpoint verifies signatures from docs/security.md "Signed tasks" alone (with Python's cryptography):
 * a signed task runs; copies of a real task published to the type's exchange unsigned or altered do not.
 */
describe('an endpoint in another language verifying signed tasks (Python, pika, cryptography)', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-py-signed-'));
  const keyFile = path.join(dir, 'signing.pem');
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const h = new Harness({ env: { TASKER_API__SIGNING__PRIVATE_KEY: keyFile } });
  let py: Proc;

  function startPython(): Proc {
    const mq = h.config.manager.message_queue;
    return h.spawnExternal('pika endpoint (signed)', PYTHON, [path.join(projectRoot(), 'test', 'endpoints', 'pika_endpoint.py')], {
      TASKER_PY_HOST: mq.host, TASKER_PY_PORT: String(mq.port), TASKER_PY_VHOST: mq.virtual_host, TASKER_PY_USER: mq.username,
      TASKER_PY_PASSWORD: mq.password, TASKER_PY_PREFIX: mq.exchange, TASKER_PY_ENDPOINT: 'pysigned', TASKER_PY_TASK_TYPE: 'worker',
      TASKER_PY_TRUSTED_KEYS: publicKeyLine(privateKey),
    });
  }

  before(async function () {
    await h.setup(this);
    await ensureDebianPackage('python3-pika', [PYTHON, ['-c', 'import pika']]);
    await ensureDebianPackage('python3-cryptography', [PYTHON, ['-c', 'import cryptography']]);
    await h.startApi();
    py = startPython();
    const ready = await py.waitForLog((l) => l.msg === 'ready', 30_000, 'the Python endpoint to be ready');
    assert.equal((ready.trusted_keys as string[]).length, 1);
  });

  after(async function () {
    await h.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a signed task', async function () {
    const created = await h.post('worker', { identifier: 'py-signed', payload: { n: 1 }, endpoints: ['pysigned'] });
    assert.equal(created.status, 201);
    const done = await h.waitForStatus('worker', 'py-signed', ['DONE']);
    assert.deepEqual(done.taskResponseList[0].payload, { python: true, echo: { n: 1 } });
  });

  it('refuses unsigned and altered copies: never run, reported with errnr 259, dead-lettered', async function () {
    assert.equal(await py.stop(), 0);
    const ids: Record<string, number> = {};
    for (const kind of ['unsigned', 'altered']) {
      const res = await h.post('worker', { identifier: `py-${kind}`, payload: { n: 2 }, endpoints: ['pysigned'] });
      assert.equal(res.status, 201);
      ids[kind] = res.json.id as number;
    }
    const queue = TOPOLOGY.endpointQueueName('worker', 'pysigned');
    const got: GetMessage[] = [];
    await h.withChannel(async (ch) => {
      for (let tries = 0; got.length < 2 && tries < 100; tries++) {
        const m = await ch.get(queue);
        if (m) {
          got.push(m);
          ch.ack(m);
        } else {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      for (const m of got) {
        const id = Number(m.properties.messageId);
        const headers = { ...m.properties.headers };
        let body = m.content;
        if (id === ids.unsigned) delete headers[SIGNATURE_HEADER];
        else body = Buffer.from(body.toString('utf8').replace('"n":2', '"n":3'));
        ch.publish(TOPOLOGY.taskExchange('worker'), '', body, { persistent: true, headers });
      }
    });
    assert.equal(got.length, 2);
    py = startPython();
    for (const [kind, said] of [['unsigned', /task refused: unsigned/], ['altered', /does not match the message/]] as const) {
      await py.waitForLog((l) => l.msg === 'task refused' && l.task_id === ids[kind], 30_000, `the ${kind} copy refused`);
      const done = await h.waitForStatus('worker', `py-${kind}`, ['DONE']);
      assert.equal(done.taskResponseList[0].errnr, ERRNR_TASK_REFUSED);
      assert.match(String(done.taskResponseList[0].errmsg), said);
      assert.ok(!py.lines.some((l) => l.msg === 'task finished' && l.task_id === ids[kind]), `${kind} ran`);
    }
    const dead = await h.withChannel(async (ch) => (await ch.checkQueue(TOPOLOGY.deadLetterQueue.name)).messageCount);
    assert.ok(dead >= 2, `dead-letter queue holds ${dead}`);
    assert.equal(await py.stop(), 0);
  });
});
