import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';
import { DEAD_LETTER_MAX_BYTES, DEAD_LETTER_MAX_LENGTH, Topology } from '../../protocol/topology';
import { Harness, Proc } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');

/** A process's peak resident set in MiB (VmHWM), which a short spike between two samples cannot hide from. */
function peakRssMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmHWM readable');
  return Number(m[1]) / 1024;
}

/**
 * An attacker holding one endpoint's broker credentials (`per_endpoint_user`) cannot make the server side
 * fill another queue, exhaust its memory or its log, or fill the registry.
 */
describe('hostile endpoint: one endpoint\'s credentials against the server side', function () {
  const h = new Harness({ env: { TASKER_API__ENDPOINT_IDENTITY: 'per_endpoint_user' } });
  const A = `${h.id}-a`;
  const B = `${h.id}-b`;
  const PASSWORD = { [A]: 'secret-a', [B]: 'secret-b' };
  let api: Proc;
  let conn: amqp.ChannelModel;
  let ch: amqp.ConfirmChannel;

  const publish = (key: string, body: Buffer, options: amqp.Options.Publish = {}): Promise<void> => new Promise((resolve, reject) => {
    ch.publish(TOPOLOGY.responsesExchange, key, body, { contentType: 'application/json', userId: A, ...options }, (err) => (err ? reject(err) : resolve()));
  });

  async function metric(name: string, reason: string): Promise<number> {
    const text = await (await fetch(`${h.baseUrl}/metrics`)).text();
    const m = new RegExp(`^${name}\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }

  /** Polls until the refusals are all counted, or `failed` says the server side let something through. */
  async function waitForRefusals(reason: string, atLeast: number, failed: () => Promise<boolean> | boolean): Promise<void> {
    for (;;) {
      if (await metric('tasker_peer_refusals_total', reason) >= atLeast || await failed()) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  const deadLetterCount = (): Promise<number> => h.withChannel(async (c) => (await c.checkQueue(TOPOLOGY.deadLetter)).messageCount);

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    await h.addEndpointUser(A, PASSWORD[A]);
    await h.addEndpointUser(B, PASSWORD[B]);
    const mq = h.config.manager.message_queue;
    conn = await amqp.connect({ hostname: mq.host, port: mq.port, username: A, password: PASSWORD[A], vhost: mq.virtual_host });
    ch = await conn.createConfirmChannel();
  });

  after(async function () {
    await conn?.close().catch(() => undefined);
    await h.teardown();
  });

  it('answers state requests only through direct reply-to: a reply_to naming another queue puts nothing there', async function () {
    const target = TOPOLOGY.endpointQueue('worker', B);
    await h.withChannel(async (c) => { await c.assertQueue(target.name, { durable: true, arguments: target.arguments }); });
    // A valid request (the reply would say `unknown`), so that only its reply_to is wrong.
    const request = Buffer.from(JSON.stringify({ kind: 'state', task_id: 1, endpoint: A, redelivered: true, resent: false, max_attempts: 3 }));
    const depth = (): Promise<number> => h.withChannel(async (c) => (await c.checkQueue(target.name)).messageCount);
    const before = await metric('tasker_peer_refusals_total', 'reply_to');
    for (let i = 0; i < 200; i++) await publish('state', request, { replyTo: target.name, correlationId: String(i) });
    await waitForRefusals('reply_to', before + 200, async () => await depth() > 0);
    assert.equal(await depth(), 0, 'nothing reached B\'s queue');
    const lines = api.lines.filter((l) => l.msg === 'state request refused: its reply_to is not a direct reply-to');
    assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} log lines for 200 refusals`);
  });

  it('dead-letters a message over the size limit without parsing it, the API\'s memory bounded', async function () {
    // 60 MB of valid JSON: parsed, it would be an array of 30 million numbers.
    const huge = Buffer.from(`[{"kind":"result","task_id":1,"endpoint":"${A}","attempt":1,"start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-01T00:00:00Z","errnr":0,"payload":[${'1,'.repeat(30_000_000)}1]}]`);
    const peakBefore = peakRssMiB(api.child.pid!);
    const deadBefore = await deadLetterCount();
    await publish('event', huge, { persistent: false });
    for (;;) {
      if (await deadLetterCount() > deadBefore) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const peakAfter = peakRssMiB(api.child.pid!);
    // The body itself (60 MB, and its chunks as amqplib gathers them) is unavoidable; parsing is not.
    assert.ok(peakAfter - peakBefore < 200, `peak RSS ${peakBefore.toFixed(0)} → ${peakAfter.toFixed(0)} MiB`);
    assert.ok(api.lines.some((l) => l.msg === 'response message over the size limit dead-lettered unparsed' && l.bytes === huge.length), 'refused unparsed');
  });

  it('bounds the dead-letter queue with a policy that initialize sets', async function () {
    const vhost = encodeURIComponent(h.config.manager.message_queue.virtual_host);
    type QueueInfo = { policy?: string; effective_policy_definition?: Record<string, unknown> };
    let q: QueueInfo = {};
    // The management API shows a queue's policy with its statistics, up to a collection interval late.
    for (const deadline = Date.now() + 15_000; q.policy === undefined && Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      q = (await h.admin().request('GET', `/queues/${vhost}/${encodeURIComponent(TOPOLOGY.deadLetter)}`)).json as QueueInfo;
    }
    assert.equal(q.policy, 'tasker.dead-letter-bounds');
    assert.deepEqual(q.effective_policy_definition, { 'max-length': DEAD_LETTER_MAX_LENGTH, 'max-length-bytes': DEAD_LETTER_MAX_BYTES, overflow: 'drop-head' });
  });

  it('logs 100 messages of 1,000 events for unknown tasks in a handful of lines, and counts them all', async function () {
    const now = new Date().toISOString();
    const before = await metric('tasker_peer_refusals_total', 'unknown_task');
    for (let m = 0; m < 100; m++) {
      const events = Array.from({ length: 1000 }, (_, i) => ({
        kind: 'result', task_id: 1_000_000_000 + m * 1000 + i, endpoint: A, attempt: 1, start_time: now, end_time: now, errnr: 0, errmsg: null,
      }));
      await publish('event', Buffer.from(JSON.stringify(events)), { persistent: true });
    }
    const refusedLines = () => api.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('response event for a task that does not exist'));
    await waitForRefusals('unknown_task', before + 100_000, () => refusedLines().length > 3);
    const lines = refusedLines();
    assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} log lines for 100,000 refused events`);
  });

  it('stores no made-up task types from a register', async function () {
    const madeUp = Array.from({ length: 1000 }, (_, i) => `madeup${i}`);
    const before = await metric('tasker_peer_refusals_total', 'task_type');
    await publish('event', Buffer.from(JSON.stringify({ kind: 'register', endpoint: A, task_types: madeUp, time: new Date().toISOString() })), { persistent: true });
    const listed = async (): Promise<string> => JSON.stringify((await h.get('endpoints')).json);
    await waitForRefusals('task_type', before + 1000, async () => /madeup/.test(await listed()));
    // A register with a configured type next to made-up ones keeps only the configured one.
    await publish('event', Buffer.from(JSON.stringify({ kind: 'register', endpoint: A, task_types: ['worker', 'madeup-x'], time: new Date().toISOString() })), { persistent: true });
    await api.waitForLog((l) => l.msg === 'endpoint registered' && l.endpoint === A);
    const { status, json } = await h.get('endpoints');
    assert.equal(status, 200);
    assert.deepEqual(json.endpoints.find((e: { name: string }) => e.name === A)?.task_types, ['worker']);
    assert.doesNotMatch(JSON.stringify(json), /madeup/);
  });
});
