import assert from 'node:assert/strict';
import { validateConfig } from '../../config/schema';
import { createLogger } from '../../lib/logger';
import type { IncomingMessage, OutgoingMessage } from '../../protocol/broker';
import { InProcessBroker } from '../../protocol/in-process/in-process-broker';
import { PendingReplies } from '../../protocol/pending-replies';
import { Topology } from '../../protocol/topology';

const topology = new Topology('t', 'classic');
const body = (s: string): Buffer => Buffer.from(s);

/** Collects what a consumer receives, settling each message with `settle`. */
function collector(settle: (m: IncomingMessage) => void = (m) => m.ack()): { got: IncomingMessage[]; handler: (m: IncomingMessage) => void } {
  const got: IncomingMessage[] = [];
  return { got, handler: (m) => { got.push(m); settle(m); } };
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

describe('in-process broker (the standalone mode\'s)', function () {
  let world: InProcessBroker;
  beforeEach(function () {
    world = new InProcessBroker(createLogger({}, 'error'));
    world.setPolicy(topology.deadLetterExchangePolicy);
  });

  async function server(): Promise<ReturnType<InProcessBroker['connect']>> {
    const conn = world.connect('api');
    conn.onConnect(async (d) => {
      await d.exchange(topology.taskExchange('worker'), 'fanout');
      await d.exchange(topology.deadLetter, 'fanout');
      await d.queue(topology.deadLetterQueue);
    });
    await conn.start();
    return conn;
  }

  it('delivers a targeted publish (BCC) to its targets only, and a fanout to every bound queue', async function () {
    const api = await server();
    const queues = ['a', 'b', 'c'].map((e) => topology.endpointQueue('worker', e));
    const seen = new Map<string, string[]>();
    for (const q of queues) {
      const c = world.connect(q.name);
      await c.consume(q, 10, (m) => { seen.set(q.name, [...seen.get(q.name) ?? [], m.body.toString()]); m.ack(); });
    }
    await api.publish('', queues[0].name, { body: body('targeted'), persistent: true, bcc: [queues[2].name], mandatory: true, messageId: '1' });
    await api.publish(topology.taskExchange('worker'), '', { body: body('broadcast'), persistent: true });
    await tick();
    assert.deepEqual(Object.fromEntries(seen), {
      't.worker.a': ['targeted', 'broadcast'], 't.worker.b': ['broadcast'], 't.worker.c': ['targeted', 'broadcast'],
    });
    await assert.rejects(api.publish('', 'no-such-queue', { body: body('x'), persistent: true, mandatory: true, messageId: '2' }), /reached no queue/);
  });

  it('keeps messages for a queue nobody consumes, honours prefetch, and redelivers released ones', async function () {
    const api = await server();
    const q = topology.endpointQueue('worker', 'a');
    await api.declareQueue(q);
    for (let i = 0; i < 5; i++) await api.publish('', q.name, { body: body(String(i)), persistent: true });
    const held: IncomingMessage[] = [];
    const c = world.connect('a');
    await c.consume(q, 2, (m) => held.push(m));
    await tick();
    assert.deepEqual(held.map((m) => m.body.toString()), ['0', '1'], 'at most prefetch unsettled');
    held[0].release();
    held[1].ack();
    await tick();
    assert.deepEqual(held.slice(2).map((m) => [m.body.toString(), m.redelivered]), [['0', true], ['2', false]]);
  });

  it('dead-letters into the dead-letter queue, and hands back unsettled deliveries when a connection closes', async function () {
    const api = await server();
    const q = topology.endpointQueue('worker', 'a');
    await api.declareQueue(q);
    await api.publish('', q.name, { body: body('bad'), persistent: true });
    await api.publish('', q.name, { body: body('kept'), persistent: true });
    const first = collector((m) => (m.body.toString() === 'bad' ? m.deadLetter() : undefined));
    const c1 = world.connect('a');
    await c1.consume(q, 10, first.handler);
    await tick();
    await c1.close();
    const dead = collector();
    await (world.connect('ops')).consume(topology.deadLetterQueue, 10, dead.handler);
    const second = collector();
    await (world.connect('a')).consume(q, 10, second.handler);
    await tick();
    assert.deepEqual(dead.got.map((m) => m.body.toString()), ['bad']);
    assert.deepEqual(second.got.map((m) => [m.body.toString(), m.redelivered]), [['kept', true]]);
  });

  it('dead-letters as RabbitMQ does: by the queue\'s argument, else by the matching policy of the highest priority, else not at all', async function () {
    const api = await server();
    world.declareExchange('t.elsewhere', 'fanout');
    const elsewhere = world.declareQueue({ name: 't.elsewhere', arguments: {}, bindings: [{ exchange: 't.elsewhere', key: '' }] });
    // Set after the queues below exist, as a policy applies to existing queues too.
    const byPolicy = topology.endpointQueue('worker', 'a');
    const byArgument = { ...topology.endpointQueue('worker', 'b'), arguments: { 'x-dead-letter-exchange': 't.elsewhere' } };
    const unmatched = { name: 'other.worker.a', arguments: {}, bindings: [] };
    for (const q of [byPolicy, byArgument, unmatched]) await api.declareQueue(q);
    world.setPolicy({ pattern: '^t\\.worker\\.a$', 'apply-to': 'queues', priority: 1, definition: { 'dead-letter-exchange': 't.elsewhere' } });
    for (const q of [byPolicy, byArgument, unmatched]) {
      await api.publish('', q.name, { body: body(q.name), persistent: true });
      await world.connect(q.name).consume(q, 10, (m) => m.deadLetter());
    }
    await tick();
    const dead = collector();
    await world.connect('ops').consume(topology.deadLetterQueue, 10, dead.handler);
    await tick();
    assert.deepEqual(dead.got.map((m) => m.body.toString()), ['t.worker.a'], 'tasker\'s policy (priority 10) over the lower one');
    assert.deepEqual(elsewhere.messages.map((m) => m.body.toString()), ['t.worker.b'], 'the argument over every policy');
  });

  it('stamps user_id with the connection\'s user, and answers requests', async function () {
    const api = await server();
    const d = topology.stateQueue;
    const responses = world.connect('api');
    responses.onConnect(async (x) => { await x.exchange(topology.responsesExchange, 'direct'); });
    await responses.start();
    await api.consume(d, 10, (m) => {
      api.reply(m, body(`hello ${m.userId}`));
      m.ack();
    });
    const endpoint = world.connect('node7');
    const reply = await endpoint.request(topology.responsesExchange, 'state', { body: body('?'), persistent: false, stampUser: true }, 1000);
    assert.equal(reply.toString(), 'hello node7');
  });
});

describe('in-process broker: the bound on its queues (manager.in_process_backlog)', function () {
  const LIMIT = 3;
  let world: InProcessBroker;
  let api: ReturnType<InProcessBroker['connect']>;
  const queues = ['a', 'b'].map((e) => topology.endpointQueue('worker', e));
  const msg = (text: string, extra: Partial<OutgoingMessage> = {}): OutgoingMessage => ({ body: body(text), persistent: true, mandatory: true, messageId: text, ...extra });

  beforeEach(async function () {
    world = new InProcessBroker(createLogger({}, 'error'), LIMIT);
    api = world.connect('api');
    api.onConnect(async (d) => { await d.exchange(topology.taskExchange('worker'), 'fanout'); });
    await api.start();
    for (const q of queues) await api.declareQueue(q);
  });

  it('takes its bound from manager.in_process_backlog: 10,000 by default, a value out of range refused by name', function () {
    const base = { mode: 'x', task_types: ['worker'] };
    assert.equal(validateConfig(base).manager.in_process_backlog, 10_000);
    assert.equal(validateConfig({ ...base, manager: { in_process_backlog: 50 } }).manager.in_process_backlog, 50);
    assert.throws(() => validateConfig({ ...base, manager: { in_process_backlog: 5 } }), /'manager\.in_process_backlog': must be a number from 10 to 1000000/);
    assert.throws(() => validateConfig({ ...base, manager: { in_process_backlog: 'lots' } }), /'manager\.in_process_backlog': must be an integer/);
  });

  it('refuses a publish that would take any queue it reaches past the bound, and stores it in none', async function () {
    for (let i = 0; i < LIMIT; i++) await api.publish('', queues[0].name, msg(`a${i}`));
    await assert.rejects(api.publish('', queues[1].name, msg('both', { bcc: [queues[0].name] })), /queue t\.worker\.a is full \(3 messages/);
    await assert.rejects(api.publish(topology.taskExchange('worker'), '', msg('fanout')), /is full/);
    await api.publish('', queues[1].name, msg('b-only'));
    const got = collector();
    await world.connect('b').consume(queues[1], 10, got.handler);
    await tick();
    assert.deepEqual(got.got.map((m) => m.body.toString()), ['b-only'], 'the refused publishes left nothing in the queue that had room');
  });

  it('deletes a full queue with its messages and bindings: broadcasts are taken again, and a later send declares it anew', async function () {
    const fanout = topology.taskExchange('worker');
    for (let i = 0; i < LIMIT; i++) await api.publish('', queues[0].name, msg(`a${i}`));
    assert.equal(api.reserve?.(fanout, ['']), null, 'the full queue bound to the fanout refuses broadcasts');
    await api.deleteQueue(queues[0].name);
    await api.deleteQueue('t.worker.never-declared');
    const room = api.reserve?.(fanout, ['']);
    assert.ok(room, 'the fanout reaches only the queue with room');
    room.release();
    await api.publish(fanout, '', msg('broadcast'));
    await api.declareQueue(queues[0]);
    await api.publish('', queues[0].name, msg('after'));
    const got = collector();
    await world.connect('a').consume(queues[0], 10, got.handler);
    await tick();
    assert.deepEqual(got.got.map((m) => m.body.toString()), ['after'], 'nothing of the deleted queue is left');
  });

  it('takes messages again once a consumer made room, and never refuses the start\'s redelivery', async function () {
    for (let i = 0; i < LIMIT; i++) await api.publish('', queues[0].name, msg(`a${i}`));
    await api.publish('', queues[0].name, msg('again', { redelivered: true }));
    const held: IncomingMessage[] = [];
    await world.connect('a').consume(queues[0], 1, (m) => held.push(m));
    await tick();
    held[0].ack();
    await tick();
    // 4 were in the queue, 2 delivered: 2 left, room for 1.
    await api.publish('', queues[0].name, msg('room'));
    await assert.rejects(api.publish('', queues[0].name, msg('no room')), /is full/);
  });

  it('holds room for admitted tasks: reservations count against the bound until released, also for queues not declared yet', async function () {
    const held = Array.from({ length: LIMIT }, () => api.reserve?.('', [queues[0].name, 't.worker.new']));
    assert.ok(held.every((r) => r !== null && r !== undefined));
    assert.equal(api.reserve?.('', [queues[0].name]), null);
    assert.equal(api.reserve?.('', ['t.worker.new']), null);
    assert.equal(api.reserve?.(topology.taskExchange('worker'), ['']), null, 'a broadcast reaches the full queue too');
    assert.notEqual(api.reserve?.('', [queues[1].name]), null);
    held[0]?.release();
    held[0]?.release();
    assert.notEqual(api.reserve?.('', [queues[0].name]), null, 'released once, room for one');
    assert.equal(api.reserve?.('', [queues[0].name]), null, 'a second release changes nothing');
  });

  it('refuses a request (a state request) to a full queue, so that its sender asks again later', async function () {
    const state = world.connect('api-state');
    state.onConnect(async (d) => { await d.exchange(topology.responsesExchange, 'direct'); await d.queue(topology.stateQueue); });
    await state.start();
    for (let i = 0; i < LIMIT; i++) await state.publish(topology.responsesExchange, 'state', msg(`s${i}`));
    await assert.rejects(world.connect('node1').request(topology.responsesExchange, 'state', msg('ask'), 1000), /request not sent/);
  });
});

describe('pending replies', function () {
  it('resolves by correlation id, times out, and fails all on a lost connection', async function () {
    const p = new PendingReplies();
    const a = p.wait('a', 1000, () => undefined);
    p.resolve('a', body('yes'));
    assert.equal((await a).toString(), 'yes');
    await assert.rejects(p.wait('b', 10, () => undefined), /no reply within 10 ms/);
    const c = p.wait('c', 1000, () => undefined);
    p.failAll('connection lost');
    await assert.rejects(c, /connection lost/);
    await assert.rejects(p.wait('d', 1000, () => { throw new Error('socket gone'); }), /request not sent/);
    p.resolve('late', body('dropped'));
  });
});
