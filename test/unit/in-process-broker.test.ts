import assert from 'node:assert/strict';
import { createLogger } from '../../lib/logger';
import type { IncomingMessage } from '../../protocol/broker';
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
