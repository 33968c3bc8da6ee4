import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { projectRoot } from '../../config/loader';
import { Topology } from '../../protocol/topology';
import { Harness, Proc } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');
const ROOT = projectRoot();

/**
 * Per-endpoint RabbitMQ users (`npm run endpoint -- add`) with `api.endpoint_identity: per_endpoint_user`:
 * an endpoint reads only its own queues, and the server side takes an event's endpoint from the
 * broker-validated `user_id`, so one endpoint cannot write another's responses.
 */
describe('endpoint identity: one RabbitMQ user per endpoint', function () {
  const h = new Harness({ env: { TASKER_API__ENDPOINT_IDENTITY: 'per_endpoint_user' } });
  // Users are broker-wide: names of this run only.
  const A = `${h.id}-a`;
  const B = `${h.id}-b`;
  const PASSWORD = { [A]: 'secret-a', [B]: 'secret-b' };
  let api: Proc;
  let managerA: Proc;

  const credentials = (name: string): NodeJS.ProcessEnv => ({
    TASKER_MANAGER__MESSAGE_QUEUE__USERNAME: name, TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD: PASSWORD[name],
  });

  async function connectAs(name: string): Promise<amqp.ChannelModel> {
    const mq = h.config.manager.message_queue;
    return amqp.connect({ hostname: mq.host, port: mq.port, username: name, password: PASSWORD[name], vhost: mq.virtual_host });
  }

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    const added = await h.addEndpointUser(A, PASSWORD[A]);
    assert.match(added, new RegExp(`TASKER_MANAGER__MESSAGE_QUEUE__USERNAME=${A}`));
    await h.addEndpointUser(B, PASSWORD[B]);
    managerA = await h.startManager(A, ['worker'], credentials(A));
  });

  after(async function () {
    await h.teardown();
  });

  it('lists the endpoint users with their connections', async function () {
    // The management API learns of a new connection at its next statistics round (every 5 s).
    let listed = { code: null as number | null, output: '' };
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      listed = await h.runScript('endpoint.js', ['list']);
      if (listed.output.includes(`${A}\t1 connection`)) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.equal(listed.code, 0, listed.output);
    assert.match(listed.output, new RegExp(`${A}\\t1 connection\\b`));
    assert.match(listed.output, new RegExp(`${B}\\t0 connections`));
  });

  it('runs tasks end to end with per-endpoint users, redeliveries included', async function () {
    const managerB = await h.startManager(B, ['worker'], credentials(B));
    const task = await h.post('worker', { identifier: 'both', payload: { sleep: 0.05 }, endpoints: [A, B] });
    assert.equal(task.status, 201);
    const done = await h.waitForStatus('worker', 'both', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => [r.endpoint, r.status, r.errnr]).sort(), [[A, 1, 0], [B, 1, 0]]);
    // Restarted, A knows nothing of the task: only a state request (sent with its own user) can tell it
    // that a resent copy is finished.
    assert.equal(await managerB.stop(), 0);
    assert.equal(await managerA.stop(), 0);
    await h.withChannel(async (ch) => {
      ch.publish(TOPOLOGY.taskExchange('worker'), '', Buffer.from(JSON.stringify({
        id: done.task.id, identifier: 'both', type: 'worker', payload: null, endpoints: [A, B], start_time: done.task.start_time,
      })), { persistent: true, contentType: 'application/json', headers: { 'x-tasker-resent': true } });
    });
    managerA = await h.startManager(A, ['worker'], credentials(A));
    await managerA.waitForLog((l) => l.msg === 'already finished; redelivery acked without running the handler' && l.taskId === done.task.id);
  });

  it('refuses and logs a response event for endpoint B published with endpoint A\'s credentials', async function () {
    // B is down; the task waits for it.
    const created = await h.post('worker', { identifier: 'forged', payload: { sleep: 0 }, endpoints: [A, B] });
    await h.waitForStatus('worker', 'forged', ['SENT'], 5000);
    for (;;) {
      const { json } = await h.get('worker/forged');
      if (json.taskResponseList.some((r: any) => r.endpoint === A && r.state === 'succeeded')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const now = new Date().toISOString();
    const forged = {
      kind: 'result', task_id: created.json.id, endpoint: B, attempt: 1, start_time: now, end_time: now, errnr: 0, errmsg: null, payload: { forged: true },
    };
    const conn = await connectAs(A);
    try {
      const ch = await conn.createConfirmChannel();
      // With A's own user_id the broker takes it; the server side refuses it, since the event claims B.
      await new Promise<void>((resolve, reject) => ch.publish(TOPOLOGY.responsesExchange, 'event', Buffer.from(JSON.stringify(forged)),
        { persistent: true, contentType: 'application/json', userId: A }, (err) => (err ? reject(err) : resolve())));
      await api.waitForLog((l) => l.msg === 'response event refused: its endpoint is not the sender' && l.endpoint === B && l.userId === A);
      // Claiming to be B in user_id is refused by RabbitMQ itself: the channel is closed.
      const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
      ch.on('error', () => undefined);
      ch.publish(TOPOLOGY.responsesExchange, 'event', Buffer.from(JSON.stringify(forged)), { contentType: 'application/json', userId: B });
      await closed;
    } finally {
      await conn.close().catch(() => undefined);
    }
    const { json } = await h.get('worker/forged');
    assert.deepEqual(json.taskResponseList.map((r: any) => [r.endpoint, r.state]), [[A, 'succeeded'], [B, 'pending']], 'B has no response');
    // The refused message is kept in the dead-letter queue for inspection.
    const dead = await h.withChannel(async (ch) => ch.get(TOPOLOGY.deadLetter, { noAck: true }));
    assert.ok(dead);
    assert.equal(JSON.parse(dead.content.toString()).endpoint, B);
    // B's own manager then does the task.
    await h.startManager(B, ['worker'], credentials(B));
    const done = await h.waitForStatus('worker', 'forged', ['DONE']);
    const fromB = done.taskResponseList.find((r: any) => r.endpoint === B);
    assert.deepEqual(fromB.payload, { yeah: 1234123, yiya: 'yippie' });
  });

  it('does not let an endpoint user read another endpoint\'s queue or the responses', async function () {
    for (const queue of [TOPOLOGY.endpointQueueName('worker', B), TOPOLOGY.eventsQueue.name, TOPOLOGY.stateQueue.name]) {
      const conn = await connectAs(A);
      try {
        const ch = await conn.createChannel();
        ch.on('error', () => undefined);
        await assert.rejects(ch.consume(queue, () => undefined), /ACCESS_REFUSED/, queue);
      } finally {
        await conn.close().catch(() => undefined);
      }
    }
  });

  it('removes an endpoint user', async function () {
    const { code, output } = await h.runScript('endpoint.js', ['remove', B]);
    assert.equal(code, 0, output);
    const listed = await h.runScript('endpoint.js', ['list']);
    assert.doesNotMatch(listed.output, new RegExp(`${B}\\t`));
    const refused = await h.runScript('endpoint.js', ['add', h.config.manager.message_queue.username]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.output, /server side or of the administrator/);
  });

  it('prints, on `endpoint add` in the production mode, a command that starts the endpoint when run as printed on a bare host', async function () {
    const C = `${h.id}-c`;
    const mq = h.config.manager.message_queue;
    const production = {
      TASKER_DB_URI: h.config.manager.db.uri, TASKER_MQ_HOST: mq.host, TASKER_MQ_PORT: String(mq.port), TASKER_MQ_VHOST: mq.virtual_host,
      TASKER_MQ_USERNAME: mq.username, TASKER_MQ_PASSWORD: mq.password, TASKER_RABBITMQ_APIURL: h.config.rabbitmq.apiurl,
      TASKER_RABBITMQ_USERNAME: h.config.rabbitmq.username, TASKER_RABBITMQ_PASSWORD: h.config.rabbitmq.password,
    };
    const add = h.spawnExternal('endpoint add', process.execPath, [path.join(ROOT, 'dist/scripts/endpoint.js'), 'add', C, '--mode', 'production'], production);
    assert.equal(await add.exited, 0, add.raw.join('\n'));
    const command = add.raw.find((l) => l.startsWith('  TASKER_'))?.trim();
    assert.ok(command, add.raw.join('\n'));
    assert.match(command, new RegExp(`TASKER_MANAGER__MESSAGE_QUEUE__HOSTS=${mq.host}:${mq.port} .*VIRTUAL_HOST=${mq.virtual_host} .*USERNAME=${C} .*npm run manager -- --endpoint ${C} --mode production$`));
    // A host with nothing set: the printed command alone, in the project's directory.
    const host = spawn('env', ['-i', `PATH=${process.env.PATH}`, `HOME=${os.homedir()}`, 'sh', '-c', command], { cwd: ROOT, detached: true, stdio: 'ignore' });
    try {
      for (const deadline = Date.now() + 90_000; ; await new Promise((r) => setTimeout(r, 500))) {
        const { json } = await h.get('endpoints');
        if ((json.endpoints as { name: string; alive: boolean }[]).some((e) => e.name === C && e.alive)) break;
        assert.ok(Date.now() < deadline, `${C} never registered: ${JSON.stringify(json)}`);
      }
      assert.equal((await h.post('worker', { identifier: 'from-the-printed-command', payload: { sleep: 0 }, endpoints: [C] })).status, 201);
      const done = await h.waitForStatus('worker', 'from-the-printed-command', ['DONE']);
      assert.deepEqual(done.taskResponseList.map((r: any) => [r.endpoint, r.state]), [[C, 'succeeded']]);
    } finally {
      process.kill(-host.pid!, 'SIGTERM');
      await new Promise((r) => host.once('exit', r));
      await h.runScript('endpoint.js', ['remove', C, '--force']);
    }
  });
});
