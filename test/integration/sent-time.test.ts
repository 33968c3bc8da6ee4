import assert from 'node:assert/strict';
import { Harness, storedTimeMs } from '../support/harness';

const ENDPOINTS = ['console1', 'console2'];
const POLICY = 'tasker-test-reject-console1';

/**
 * sent_time is set whenever a task is known to have been sent, also when the broker never confirmed the
 * send: here console1's queue refuses every message (a policy of the run's own vhost: max-length 0,
 * reject-publish), so the publish is nacked and the task stays CREATED, while console2's copy went through
 * and console2 answers it. Once console1's queue takes messages again, the resend job sends it console1's copy.
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

  it('is set by the first response to a CREATED task, on the database clock, no later than that response is stored; the task stays CREATED until the resend job reaches the endpoint whose copy was refused', async function () {
    // A queue takes one policy, the matching one of the highest priority: this one over tasker's dead-letter-exchange (10).
    const put = await h.admin().request('PUT', policyPath(), {
      pattern: '^tasker\\.worker\\.console1$', 'apply-to': 'queues', priority: 100, definition: { 'max-length': 0, overflow: 'reject-publish' },
    });
    assert.ok(put.status === 201 || put.status === 204, `policy not set: ${JSON.stringify(put)}`);
    try {
      const posted = await h.post('worker', { identifier: 'nacked', payload: { sleep: 0 }, endpoints: ENDPOINTS });
      assert.equal(posted.status, 201, JSON.stringify(posted.json));
      assert.equal(posted.json.status, 'CREATED', 'the broker nacked the send: the task stays CREATED');
      // console2 got its copy all the same and answers it while the task is still CREATED.
      const rows = await waitFor(async () => {
        const r = await h.query<{ status: string; sent_time: string | null; start_time: string; response_stored: string }>(
          `SELECT t.status, t.sent_time, t.start_time, r.last_modified_time AS response_stored FROM task t JOIN task_response r ON r.task_id = t.id
           WHERE t.identifier = 'nacked' AND r.endpoint = 'console2' AND r.status = 1`);
        return r.length ? r : null;
      });
      const [row] = rows;
      // One answer does not show that console1's queue took its copy: the task stays CREATED, for the resend job.
      assert.equal(row.status, 'CREATED', 'no send was confirmed: the task stays CREATED');
      assert.notEqual(row.sent_time, null, 'a task an endpoint answered was sent');
      const sent = storedTimeMs(row.sent_time);
      assert.ok(sent >= storedTimeMs(row.start_time), 'sent after it was created');
      // The database's clock, when the first answer was stored: never the endpoint's own start time.
      assert.ok(sent <= storedTimeMs(row.response_stored), 'sent no later than the answer was stored');
      const events = await h.get('worker/nacked/events');
      assert.equal(events.status, 200);
      const sentEvents = events.json.events.filter((e: any) => e.kind === 'sent');
      assert.deepEqual(sentEvents.map((e: any) => [e.detail.by, e.detail.round]), [['first response', 0]]);
    } finally {
      await h.admin().request('DELETE', policyPath());
    }
    // The resend job sends the task again to the endpoint that has not answered, now that its queue
    // takes messages; console2 is not sent it again. The time of the first send stays.
    const done = await h.waitForStatus('worker', 'nacked', ['DONE']);
    const history = (await h.get('worker/nacked/events')).json.events;
    const resent = history.filter((e: any) => e.kind === 'sent' && e.detail.resend === 'unsent');
    assert.equal(resent.length, 1, JSON.stringify(history));
    assert.equal(resent[0].detail.targets, 1, 'resent to console1 only');
    const runs = await h.query<{ endpoint: string; attempts: number }>(
      `SELECT r.endpoint, r.attempts FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = 'nacked' ORDER BY r.endpoint`);
    assert.deepEqual(runs.map((r) => [r.endpoint, Number(r.attempts)]), [['console1', 1], ['console2', 1]]);
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
