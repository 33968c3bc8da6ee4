import assert from 'node:assert/strict';
import { Harness, Proc } from '../support/harness';
import { RabbitCluster, requireOwnRabbit } from '../support/rabbit-cluster';

const PUBLISH_TIMEOUT_S = 5;
/** The requirement: well under the publish timeout. */
const QUICK_MS = 2000;

/**
 * A broker memory alarm, on a RabbitMQ node of the test's own (never the shared one): the API's
 * connection reports `blocked`, and POST stores the task as CREATED at once instead of waiting out the
 * publish timeout; once the alarm clears, the resend job sends it and it completes by itself.
 */
describe('faults: a blocked RabbitMQ (memory alarm)', function () {
  const node = new RabbitCluster(1);
  const env: NodeJS.ProcessEnv = { TASKER_API__PUBLISH_TIMEOUT: String(PUBLISH_TIMEOUT_S) };
  const h = new Harness({ waitTimeout: 60, env });
  let api: Proc;

  before(async function () {
    await requireOwnRabbit(this);
    await node.start();
    Object.assign(env, node.testEnv());
    await h.setup();
    api = await h.startApi();
    await h.startManager('console1', ['worker']);
  });

  after(async function () {
    try {
      await h.teardown();
    } finally {
      await node.destroy();
    }
  });

  async function timedPost(identifier: string): Promise<{ ms: number; status: number; json: any }> {
    const started = Date.now();
    const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: ['console1'] });
    return { ms: Date.now() - started, ...res };
  }

  it('answers POST with CREATED quickly while blocked, and sends the task once the alarm clears', async function () {
    const before = await timedPost('before-alarm');
    assert.equal(before.status, 201);
    assert.equal(before.json.status, 'SENT');
    await h.waitForStatus('worker', 'before-alarm', ['DONE']);

    await node.ctl(0, ['set_vm_memory_high_watermark', '0.0000001']);
    const blocked: { ms: number; status: number; json: any }[] = [];
    try {
      // The first publish after the alarm is what the broker blocks; it was waiting for its confirm.
      for (let i = 0; i < 3; i++) blocked.push(await timedPost(`during-alarm-${i}`));
      await api.waitForLog((l) => l.msg === 'broker blocked publishing', 5_000, 'the blocked notice');
    } finally {
      await node.ctl(0, ['set_vm_memory_high_watermark', '0.4']);
    }
    for (const b of blocked) {
      assert.equal(b.status, 201, JSON.stringify(b.json));
      assert.equal(b.json.status, 'CREATED');
      assert.ok(b.ms < QUICK_MS, `POST took ${b.ms} ms while blocked (publish_timeout ${PUBLISH_TIMEOUT_S} s)`);
    }
    process.stdout.write(`      POST while blocked answered in ${blocked.map((b) => b.ms).join(', ')} ms\n`);

    for (let i = 0; i < blocked.length; i++) {
      const done = await h.waitForStatus('worker', `during-alarm-${i}`, ['DONE'], 60_000);
      assert.ok(done.task.sent_time, `during-alarm-${i} has no sent_time`);
    }
    await api.waitForLog((l) => l.msg === 'broker unblocked publishing', 5_000, 'the unblocked notice');
    assert.ok(api.lines.some((l) => l.msg === 'sent tasks the broker had not confirmed'), 'the resend job sent nothing');
    await h.checkInvariants([{ type: 'worker', identifier: 'before-alarm' }, ...blocked.map((_b, i) => ({ type: 'worker', identifier: `during-alarm-${i}` }))],
      ['tasker.worker.console1']);
  });
});
