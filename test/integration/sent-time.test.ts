import assert from 'node:assert/strict';
import { Harness, storedTimeMs } from '../support/harness';

const ENDPOINTS = ['console1', 'console2'];
const POLICY = 'tasker-test-reject-console1';

/**
 * sent_time is set whenever a task is known to have been sent, also when the broker never confirmed the
 * send: here console1's queue refuses every message (a policy of the run's own vhost: max-length 0,
 * reject-publish), so the publish is nacked and the task stays CREATED, while console2's copy went through
 * and console2 answers it.
 */
describe('sent_time of a task whose send was never confirmed', function () {
  const h = new Harness({ waitTimeout: 60, env: { TASKER_API__RESEND_INTERVAL: '0.5', TASKER_API__RESEND_AFTER: '1' } });

  before(async function () {
    await h.setup(this);
    await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker'] })));
  });

  after(async function () {
    await h.teardown();
  });

  const policyPath = (): string => `/policies/${encodeURIComponent(h.config.manager.message_queue.virtual_host)}/${POLICY}`;

  it('is set by the first response to a CREATED task, no later than that response, and shown by GET and the list', async function () {
    const put = await h.admin().request('PUT', policyPath(), {
      pattern: '^tasker\\.worker\\.console1$', 'apply-to': 'queues', definition: { 'max-length': 0, overflow: 'reject-publish' },
    });
    assert.ok(put.status === 201 || put.status === 204, `policy not set: ${JSON.stringify(put)}`);
    try {
      const posted = await h.post('worker', { identifier: 'nacked', payload: { sleep: 0 }, endpoints: ENDPOINTS });
      assert.equal(posted.status, 201, JSON.stringify(posted.json));
      assert.equal(posted.json.status, 'CREATED', 'the broker nacked the send: the task stays CREATED');
      // console2 got its copy all the same and answers it while the task is still CREATED.
      const rows = await waitFor(async () => {
        const r = await h.query<{ status: string; sent_time: string | null; start_time: string; response_start: string | null }>(
          `SELECT t.status, t.sent_time, t.start_time, r.start_time AS response_start FROM task t JOIN task_response r ON r.task_id = t.id
           WHERE t.identifier = 'nacked' AND r.endpoint = 'console2' AND r.status = 1`);
        return r.length ? r : null;
      });
      const [row] = rows;
      assert.equal(row.status, 'SENT', 'console1 has not answered: the task is SENT, not DONE');
      assert.notEqual(row.sent_time, null, 'a task an endpoint answered was sent');
      const sent = storedTimeMs(row.sent_time);
      assert.ok(sent >= storedTimeMs(row.start_time), 'sent after it was created');
      assert.ok(sent <= storedTimeMs(row.response_start), 'sent no later than the endpoint started it');
      const events = await h.get('worker/nacked/events');
      assert.equal(events.status, 200);
      const sentEvents = events.json.events.filter((e: any) => e.kind === 'sent');
      assert.deepEqual(sentEvents.map((e: any) => e.detail.by), ['first response']);
    } finally {
      await h.admin().request('DELETE', policyPath());
    }
    // console1's copy, as a resend would bring it once its queue takes messages again (the resend job
    // picks CREATED tasks only, and this one is SENT now); the time of the first send stays.
    const [{ id }] = await h.query<{ id: number }>(`SELECT id FROM task WHERE identifier = 'nacked'`);
    const task = (await h.get('worker/nacked')).json.task;
    await h.withChannel(async (ch) => {
      const body = { id: Number(id), identifier: 'nacked', type: 'worker', payload: { sleep: 0 }, endpoints: ENDPOINTS, start_time: task.start_time };
      ch.sendToQueue('tasker.worker.console1', Buffer.from(JSON.stringify(body)), {
        persistent: true, contentType: 'application/json', messageId: String(id),
      });
    });
    const done = await h.waitForStatus('worker', 'nacked', ['DONE']);
    const first = await h.query<{ sent_time: string }>(`SELECT sent_time FROM task WHERE identifier = 'nacked'`);
    assert.equal(Date.parse(done.task.sent_time), storedTimeMs(first[0].sent_time));
    assert.ok(Date.parse(done.task.sent_time) <= Date.parse(done.task.end_time));
    const list = await h.get('worker?status=DONE');
    assert.equal(list.status, 200);
    const listed = list.json.tasks.find((t: any) => t.identifier === 'nacked');
    assert.equal(listed.sent_time, done.task.sent_time);
  });
});

async function waitFor<T>(fn: () => Promise<T | null>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
