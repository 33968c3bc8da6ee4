import assert from 'node:assert/strict';
import { Harness } from '../support/harness';

/**
 * `api.background_send_from`: a task expecting at least that many endpoints is answered once stored
 * (CREATED) and published after the answer; it is sent and run all the same. One expecting fewer is
 * answered after the broker's confirm (SENT), as always.
 */
describe('answering a large task before its publish is confirmed (rabbitmq)', function () {
  const h = new Harness({ env: { TASKER_API__BACKGROUND_SEND_FROM: '2' } });

  before(async function () {
    await h.setup(this);
    await h.startSystem([{ name: 'bg1', task_types: ['worker'] }, { name: 'bg2', task_types: ['worker'] }]);
  });

  after(async function () {
    await h.teardown();
  });

  it('answers CREATED at the threshold and sends it after the answer; below it, answers SENT', async function () {
    const large = await h.post('worker', { identifier: 'large', payload: { sleep: 0 }, endpoints: ['bg1', 'bg2'] });
    assert.equal(large.status, 201, JSON.stringify(large.json));
    assert.deepEqual([large.json.status, large.json.sent_time, large.json.responses.pending], ['CREATED', null, 2]);
    const done = await h.waitForStatus('worker', 'large', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: { endpoint: string; state: string; attempts: number }) => [r.endpoint, r.state, r.attempts]),
      [['bg1', 'succeeded', 1], ['bg2', 'succeeded', 1]]);
    assert.notEqual(done.task.sent_time, null, 'the confirm was recorded');
    const kinds = ((await h.get('worker/large/events')).json.events as { kind: string }[]).map((e) => e.kind);
    assert.deepEqual(kinds.filter((k) => k === 'created' || k === 'sent'), ['created', 'sent']);

    const small = await h.post('worker', { identifier: 'small', payload: { sleep: 0 }, endpoints: ['bg1'] });
    assert.equal(small.status, 201, JSON.stringify(small.json));
    assert.equal(small.json.status, 'SENT');
    await h.waitForStatus('worker', 'small', ['DONE']);
  });
});
