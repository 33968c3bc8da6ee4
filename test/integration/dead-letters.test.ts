import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { Topology } from '../../protocol/topology';
import { Harness, LogLine, Proc } from '../support/harness';
import { parseMetrics } from '../support/prometheus';

const TOPOLOGY = new Topology('tasker', 'classic');
const LEGACY_MESSAGE = 'queue declared with the arguments an older version created it with';

interface QueueInfo {
  name: string;
  arguments: Record<string, unknown>;
  policy?: string | null;
  effective_policy_definition?: Record<string, unknown>;
}

async function until<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** What the suites share: the run's endpoint users, their connections, and views of the broker. */
function world(h: Harness) {
  const passwords = new Map<string, string>();
  const vhost = (): string => encodeURIComponent(h.config.manager.message_queue.virtual_host);
  return {
    vhost,
    async addUser(name: string): Promise<NodeJS.ProcessEnv> {
      passwords.set(name, `secret-${name}`);
      await h.addEndpointUser(name, `secret-${name}`);
      return { TASKER_MANAGER__MESSAGE_QUEUE__USERNAME: name, TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD: `secret-${name}` };
    },
    connectAs(name: string): Promise<amqp.ChannelModel> {
      const mq = h.config.manager.message_queue;
      return amqp.connect({ hostname: mq.host, port: mq.port, username: name, password: passwords.get(name), vhost: mq.virtual_host });
    },
    /** The queue as the management API shows it, once its statistics (the policy among them, every 5 s) arrived. */
    queue(name: string): Promise<QueueInfo> {
      return until(`statistics of ${name}`, async () => {
        const q = (await h.admin().request('GET', `/queues/${vhost()}/${encodeURIComponent(name)}`)).json as QueueInfo;
        return 'policy' in q ? q : null;
      });
    },
    depth(name: string): Promise<number> {
      return h.withChannel(async (ch) => (await ch.checkQueue(name)).messageCount);
    },
    /** `tasker_dead_letter_messages` of the API, or null while it has none. */
    async gauge(): Promise<number | null> {
      const samples = parseMetrics(await (await fetch(`${h.baseUrl}/metrics`)).text());
      return samples.find((s) => s.name === 'tasker_dead_letter_messages')?.value ?? null;
    },
    /**
     * Publishes to the dead-letter exchange as `user`: resolves with how the channel ended, `confirmed`
     * when the broker took the message.
     */
    async publishDeadLetter(user: string): Promise<{ code: number | null; message: string }> {
      const conn = await this.connectAs(user);
      try {
        const ch = await conn.createConfirmChannel();
        let error: { code?: number; message: string } | null = null;
        ch.on('error', (err: { code?: number; message: string }) => { error = err; });
        const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
        const confirmed = await new Promise<boolean>((resolve) => {
          ch.publish(TOPOLOGY.deadLetter, '', Buffer.from('forged dead letter'), {}, (err) => resolve(!err));
        });
        if (confirmed) return { code: null, message: 'confirmed' };
        await closed;
        const e = error as { code?: number; message: string } | null;
        return { code: e?.code ?? null, message: e?.message ?? 'closed' };
      } finally {
        await conn.close().catch(() => undefined);
      }
    },
    /** A message that is not a task, straight into a queue (as the application user): its manager dead-letters it. */
    publishInvalid(queue: string, text: string): Promise<void> {
      return h.withChannel(async (ch) => { ch.sendToQueue(queue, Buffer.from(text), { persistent: true, contentType: 'application/json' }); });
    },
    /** The first message of the dead-letter queue, left there; with the queue its x-death header names. */
    peekDeadLetter(): Promise<{ body: string; queue: unknown; reason: unknown }> {
      return h.withChannel(async (ch) => {
        const msg = await ch.get(TOPOLOGY.deadLetter, { noAck: false });
        assert.ok(msg, 'a dead letter');
        const death = (msg.properties.headers?.['x-death'] as { queue?: unknown; reason?: unknown }[] | undefined)?.[0];
        ch.nack(msg, false, true);
        return { body: msg.content.toString(), queue: death?.queue, reason: death?.reason };
      });
    },
  };
}

/**
 * Refused messages reach the dead-letter queue by a policy, so that an endpoint's user needs (and has) no
 * permission on the dead-letter exchange; the API shows the queue's depth. Policies apply to classic and
 * quorum queues alike.
 */
for (const queueType of ['classic', 'quorum'] as const) describe(`dead letters: by policy, with no endpoint allowed to write them (RabbitMQ, ${queueType} queues)`, function () {
  const h = new Harness({
    env: { TASKER_API__ENDPOINT_IDENTITY: 'per_endpoint_user', TASKER_API__DEAD_LETTER_CHECK_INTERVAL: '0.5', TASKER_MANAGER__MESSAGE_QUEUE__QUEUE_TYPE: queueType },
  });
  const T = new Topology('tasker', queueType);
  const w = world(h);
  const A = `${h.id}-a`;
  let manager: Proc;

  before(async function () {
    await h.setup(this);
    await h.startApi();
    manager = await h.startManager(A, ['worker'], await w.addUser(A));
  });

  after(async function () {
    await h.teardown();
  });

  it('sets the dead-letter exchange by policy on the queues that refuse messages, not as their argument, and bounds the dead-letter queue by the other policy', async function () {
    for (const name of [TOPOLOGY.endpointQueueName('worker', A), TOPOLOGY.eventsQueue.name, TOPOLOGY.stateQueue.name]) {
      const q = await w.queue(name);
      assert.deepEqual(q.arguments, { 'x-queue-type': queueType }, name);
      assert.equal(q.policy, 'tasker.dead-letter-exchange', name);
      assert.deepEqual(q.effective_policy_definition, { 'dead-letter-exchange': TOPOLOGY.deadLetter }, name);
    }
    const dlq = await w.queue(TOPOLOGY.deadLetter);
    assert.equal(dlq.policy, 'tasker.dead-letter-bounds');
  });

  it('refuses an endpoint user that publishes to the dead-letter exchange, or declares a queue naming it: 403, the channel closed', async function () {
    const before = await w.depth(TOPOLOGY.deadLetter);
    const published = await w.publishDeadLetter(A);
    assert.equal(published.code, 403, published.message);
    assert.match(published.message, /ACCESS_REFUSED - access to exchange 'tasker\.dead-letter' .* refused for user/);
    // What an older version did to create its queue needs that very permission, which the user no longer has.
    const conn = await w.connectAs(A);
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      await assert.rejects(ch.assertQueue(TOPOLOGY.endpointQueueName('backup', A), { durable: true, arguments: T.eventsQueue.legacyArguments }),
        /ACCESS_REFUSED - access to exchange 'tasker\.dead-letter'/);
    } finally {
      await conn.close().catch(() => undefined);
    }
    assert.equal(await w.depth(TOPOLOGY.deadLetter), before, 'nothing reached the dead-letter queue');
  });

  it('dead-letters what the endpoint\'s manager refuses, and shows the dead-letter queue\'s depth in tasker_dead_letter_messages', async function () {
    const queue = TOPOLOGY.endpointQueueName('worker', A);
    const before = await w.depth(TOPOLOGY.deadLetter);
    await until('the gauge shows the queue as it is', async () => await w.gauge() === before);
    for (let i = 0; i < 3; i++) await w.publishInvalid(queue, `not a task ${i}`);
    await until('3 refusals dead-lettered', async () => await w.depth(TOPOLOGY.deadLetter) === before + 3);
    assert.equal(manager.lines.filter((l: LogLine) => l.msg === 'invalid message dead-lettered').length, 3);
    const dead = await w.peekDeadLetter();
    assert.equal(dead.queue, queue, 'x-death names the endpoint\'s queue');
    assert.equal(dead.reason, 'rejected');
    const shown = await until('the gauge shows them', async () => { const v = await w.gauge(); return v === before + 3 ? v : null; });
    assert.equal(shown, before + 3);
    await h.withChannel(async (ch) => { await ch.purgeQueue(TOPOLOGY.deadLetter); });
    await until('the gauge shows the purge', async () => await w.gauge() === 0);
  });
});

/**
 * An installation made by a version that named the dead-letter exchange in the queues' arguments (and gave
 * endpoint users write on it), upgraded in place: nothing lost, the old queues still work, the permission gone.
 */
describe('upgrading from queues that name the dead-letter exchange in their arguments (RabbitMQ)', function () {
  const h = new Harness({ env: { TASKER_API__ENDPOINT_IDENTITY: 'per_endpoint_user' } });
  const w = world(h);
  const OLD = `${h.id}-old`;
  const NEW = `${h.id}-new`;
  const credentials = new Map<string, NodeJS.ProcessEnv>();
  const oldQueue = TOPOLOGY.endpointQueueName('worker', OLD);

  before(async function () {
    await h.setup(this);
    // What the older version left: no dead-letter-exchange policy, the queues with the argument, the wider permission.
    await h.admin().request('DELETE', `/policies/${w.vhost()}/${encodeURIComponent(TOPOLOGY.deadLetterExchangePolicyName)}`);
    for (const name of [TOPOLOGY.eventsQueue.name, TOPOLOGY.stateQueue.name]) await h.admin().request('DELETE', `/queues/${w.vhost()}/${encodeURIComponent(name)}`);
    await h.withChannel(async (ch) => {
      for (const q of [TOPOLOGY.eventsQueue, TOPOLOGY.stateQueue, TOPOLOGY.endpointQueue('worker', OLD)]) {
        await ch.assertQueue(q.name, { durable: true, arguments: q.legacyArguments });
        for (const b of q.bindings) await ch.bindQueue(q.name, b.exchange, b.key);
      }
    });
    for (const name of [OLD, NEW]) {
      credentials.set(name, await w.addUser(name));
      const p = TOPOLOGY.endpointPermissions(name);
      await h.admin().request('PUT', `/permissions/${w.vhost()}/${encodeURIComponent(name)}`, { ...p, write: p.write.replace('^(', '^(tasker\\.dead-letter|') });
    }
    // Waiting in the old queue across the upgrade: the manager will refuse it.
    await w.publishInvalid(oldQueue, 'sent before the upgrade');
  });

  after(async function () {
    await h.teardown();
  });

  it('initialize --upgrade sets the policies and takes the dead-letter exchange from the endpoint users, and deletes nothing', async function () {
    assert.deepEqual(await w.publishDeadLetter(OLD), { code: null, message: 'confirmed' }, 'before: the old permission');
    await h.withChannel(async (ch) => { await ch.purgeQueue(TOPOLOGY.deadLetter); });

    const refused = await h.runScript('initialize.js', ['--upgrade', '--rabbitmq']);
    assert.equal(refused.code, 1);
    assert.match(refused.output, /--upgrade resets nothing/);
    assert.equal(await w.depth(oldQueue), 1, 'the refused run changed nothing');

    const upgraded = await h.runScript('initialize.js', ['--upgrade']);
    assert.equal(upgraded.code, 0, upgraded.output);
    const { json: policies } = await h.admin().request('GET', `/policies/${w.vhost()}`);
    assert.deepEqual((policies as { name: string }[]).map((p) => p.name).sort(), [TOPOLOGY.deadLetterBoundsPolicyName, TOPOLOGY.deadLetterExchangePolicyName]);
    for (const name of [OLD, NEW]) {
      const { json } = await h.admin().request('GET', `/permissions/${w.vhost()}/${encodeURIComponent(name)}`);
      assert.equal((json as { write: string }).write, TOPOLOGY.endpointPermissions(name).write, name);
    }
    assert.equal((await w.publishDeadLetter(OLD)).code, 403, 'after: refused');
    assert.equal(await w.depth(oldQueue), 1, 'the message waiting in the old queue is still there');
    const old = await w.queue(oldQueue);
    assert.equal(old.arguments['x-dead-letter-exchange'], TOPOLOGY.deadLetter, 'the old queue as it was');
  });

  it('runs the API and the managers on the old queues as they are, logged once per queue, tasks delivered and refusals dead-lettered', async function () {
    const api = await h.startApi();
    const warned = api.lines.filter((l) => l.msg?.toString().startsWith(LEGACY_MESSAGE));
    assert.deepEqual(warned.map((l) => [l.level, l.queue]), [['warn', TOPOLOGY.eventsQueue.name], ['info', TOPOLOGY.stateQueue.name]]);

    const managers = await Promise.all([OLD, NEW].map((name) => h.startManager(name, ['worker'], credentials.get(name))));
    await managers[0].waitForLog((l) => l.msg === 'invalid message dead-lettered');
    await until('the old queue\'s refusal dead-lettered', async () => await w.depth(TOPOLOGY.deadLetter) === 1);
    const dead = await w.peekDeadLetter();
    assert.deepEqual([dead.body, dead.queue], ['sent before the upgrade', oldQueue]);
    assert.deepEqual(managers[0].lines.filter((l) => l.msg?.toString().startsWith(LEGACY_MESSAGE)).map((l) => [l.level, l.queue]), [['warn', oldQueue]]);
    assert.ok(!managers[1].lines.some((l) => l.msg?.toString().startsWith(LEGACY_MESSAGE)), 'the new endpoint\'s queue is new');

    const task = await h.post('worker', { identifier: 'after-upgrade', payload: { sleep: 0 }, endpoints: [OLD, NEW] });
    assert.equal(task.status, 201, JSON.stringify(task.json));
    const done = await h.waitForStatus('worker', 'after-upgrade', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: { endpoint: string; state: string }) => [r.endpoint, r.state]).sort(), [[NEW, 'succeeded'], [OLD, 'succeeded']].sort());
    const fresh = await w.queue(TOPOLOGY.endpointQueueName('worker', NEW));
    assert.deepEqual([fresh.arguments, fresh.policy], [{ 'x-queue-type': 'classic' }, TOPOLOGY.deadLetterExchangePolicyName]);

    // After a lost connection everything is declared again, the old queues too, and not logged again.
    // The management API lists a connection from its next statistics round (every 5 s).
    const apiConnection = await until('the API\'s connection listed', async () => {
      const { json } = await h.admin().request('GET', `/vhosts/${w.vhost()}/connections`);
      return (json as { name: string; client_properties?: { connection_name?: string } }[])
        .find((c) => c.client_properties?.connection_name?.startsWith('tasker api'));
    });
    const reconnects = api.lines.filter((l) => l.msg === 'connected').length;
    await h.admin().request('DELETE', `/connections/${encodeURIComponent(apiConnection.name)}`);
    await until('the API reconnected', async () => api.lines.filter((l) => l.msg === 'connected').length > reconnects);
    const again = await h.post('worker', { identifier: 'after-reconnect', payload: { sleep: 0 }, endpoints: [OLD, NEW] });
    assert.equal(again.status, 201, JSON.stringify(again.json));
    await h.waitForStatus('worker', 'after-reconnect', ['DONE']);
    assert.equal(api.lines.filter((l) => l.msg?.toString().startsWith(LEGACY_MESSAGE)).length, 3, 'responses, state, and the old endpoint queue at the first send: once each');
  });
});
