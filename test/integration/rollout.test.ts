import assert from 'node:assert/strict';
import { Topology } from '../../protocol/topology';
import { Backend, Harness } from '../support/harness';
import { assertSentOnce, HistoryEvent, maxOverlap, replayRollout } from '../support/rollout-history';

const TOPOLOGY = new Topology('tasker', 'classic');
const name = (i: number): string => `ep${String(i).padStart(2, '0')}`;
const ALL = Array.from({ length: 20 }, (_v, i) => name(i + 1));
const TYPES = ['worker', 'flaky'];

/** Rolling sends through the real processes: a few endpoints at a time, stopping when too many fail. */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`rollouts (${backend})`, function () {
  const h = new Harness({
    backend, waitTimeout: 3, env: { TASKER_TASK_TYPES: '[worker, backup, flaky]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers' },
  });

  before(async function () {
    await h.setup(this);
    if (backend === 'rabbitmq') {
      await h.startApi();
      // 20 endpoints in two manager processes.
      await Promise.all([h.startManager(ALL.slice(0, 10), TYPES), h.startManager(ALL.slice(10), TYPES)]);
    } else {
      await h.startAllInOne(ALL.map((n) => ({ name: n, task_types: TYPES })));
    }
  });

  after(async function () {
    await h.teardown();
  });

  async function history(type: string, identifier: string): Promise<HistoryEvent[]> {
    const res = await h.get(`${type}/${identifier}/events?limit=5000`);
    assert.equal(res.status, 200);
    return res.json.events;
  }

  it('sends to at most batch_size endpoints at once, and to every one of them once', async function () {
    const body = { identifier: 'roll-20', payload: { sleep: 0.6 }, endpoints: ALL, rollout: { batch_size: 3, max_errors: 2 } };
    const created = await h.post('worker', body);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal(created.json.responses.pending, 3);
    assert.equal(created.json.responses.queued, 17);
    assert.deepEqual(created.json.rollout, {
      batch_size: 3, max_errors: 2, request: { batch_size: 3, max_errors: 2 }, sent: 3, running: 3, remaining: 17, errors: 0,
    });
    const other = await h.post('worker', { ...body, rollout: { batch_size: 4, max_errors: 2 } });
    assert.equal(other.status, 409, 'a repeat with another rollout is a conflict');
    assert.equal((await h.post('worker', body)).status, 200, 'the same rollout again is an idempotent repeat');

    const done = await h.waitForStatus('worker', 'roll-20', ['DONE', 'INCOMPLETE', 'STOPPED'], 60_000);
    assert.equal(done.task.status, 'DONE');
    assert.equal(done.task.responses.succeeded, 20);
    assert.deepEqual(done.task.rollout, {
      batch_size: 3, max_errors: 2, request: { batch_size: 3, max_errors: 2 }, sent: 20, running: 0, remaining: 0, errors: 0,
    });
    const events = await history('worker', 'roll-20');
    const { sends, maxInFlight, order } = replayRollout(events);
    assertSentOnce(sends, ALL);
    assert.deepEqual(order, ALL, 'sent in the order the endpoints were listed');
    assert.equal(maxInFlight, 3, 'three in flight at once, never more');
    const overlap = maxOverlap(events);
    assert.ok(overlap <= 3, `at most 3 endpoints ran at once by the history's times (${overlap})`);
    assert.ok(overlap >= 2, `the rollout ran endpoints side by side (${overlap})`);
    // Each batch after the first was decided by a result: its `sent` follows a `finished`.
    const kinds = events.map((e) => e.kind);
    assert.equal(kinds.filter((k) => k === 'sent').length >= 7, true);
    assert.equal(kinds.indexOf('sent', kinds.indexOf('sent') + 1) > kinds.indexOf('finished'), true);
    assert.equal(kinds[kinds.length - 1], 'done');
  });

  it('stops after the third failure with max_errors 2: the rest skipped, never sent; STOPPED; a retry goes on through the slots', async function () {
    // ep03, ep07, ep11 and ep15 fail (the first time); with two at a time, never two of them at once.
    const failing = [name(3), name(7), name(11), name(15)];
    const created = await h.post('flaky', { identifier: 'roll-fail', payload: { sleep: 0.1, fail: failing }, endpoints: ALL, rollout: { batch_size: '10%', max_errors: 2 } });
    assert.equal(created.status, 201);
    assert.equal(created.json.rollout.batch_size, 2, '10% of 20');
    const stopped = await h.waitForStatus('flaky', 'roll-fail', ['DONE', 'INCOMPLETE', 'STOPPED'], 60_000);
    assert.equal(stopped.task.status, 'STOPPED');
    assert.ok(stopped.task.end_time);
    const byState = (state: string): string[] => stopped.taskResponseList.filter((r: any) => r.state === state).map((r: any) => r.endpoint);
    assert.deepEqual(byState('failed'), failing.slice(0, 3), 'stopped at the third failure');
    const skipped = byState('skipped');
    // A slot frees whenever an endpoint in flight finishes, so while ep11 still runs its neighbours may
    // finish and free slots for ep12, ep13, ep14; ep15 (the fourth failing one) is never sent: the rest are skipped.
    assert.ok(skipped.length >= 6 && skipped.length <= 9, `skipped: ${skipped.join(',')}`);
    assert.deepEqual(skipped, ALL.slice(20 - skipped.length), 'the endpoints not yet sent are the ones skipped');
    assert.ok(skipped.includes(name(15)), 'a failing endpoint never sent did not run');
    for (const r of stopped.taskResponseList.filter((x: any) => x.state === 'skipped')) {
      assert.equal(r.status, null);
      assert.equal(r.attempts, 0);
    }
    assert.equal(stopped.task.rollout.errors, 3);
    assert.equal(stopped.task.rollout.remaining, 0);
    assert.equal(stopped.task.rollout.sent, 20 - skipped.length);
    assert.equal(stopped.task.responses.skipped, skipped.length);

    const events = await history('flaky', 'roll-fail');
    const { sends, maxInFlight } = replayRollout(events);
    assertSentOnce(sends, ALL.slice(0, 20 - skipped.length));
    assert.ok(maxInFlight <= 2);
    const kinds = events.map((e) => e.kind);
    const skipAt = kinds.indexOf('skipped');
    assert.ok(skipAt > 0);
    const skipEvent = events[skipAt];
    assert.equal(skipEvent.detail?.errors, 3);
    assert.equal(skipEvent.detail?.max_errors, 2);
    assert.deepEqual(skipEvent.detail?.endpoints, skipped);
    assert.equal(kinds.indexOf('sent', skipAt), -1, 'nothing sent after the stop');
    assert.equal(kinds[kinds.length - 1], 'stopped');
    const listed = await h.get('flaky?status=STOPPED');
    assert.deepEqual(listed.json.tasks.map((t: any) => t.identifier), ['roll-fail']);
    const skippedPage = await h.get('flaky/roll-fail/responses?state=skipped');
    assert.equal(skippedPage.json.responses.length, skipped.length);

    // The retry of what did not succeed: queued again and sent two at a time, the error budget afresh (the
    // failures not retried yet do not count again); the flaky handler succeeds from the second round on.
    const retried = await h.post('flaky/roll-fail/retry', { endpoints: 'unfinished' });
    assert.equal(retried.status, 200, JSON.stringify(retried.json));
    assert.deepEqual([...retried.json.retried].sort(), skipped);
    const again = await h.post('flaky/roll-fail/retry', { endpoints: 'failed' });
    assert.equal(again.status, 200);
    const done = await h.waitForStatus('flaky', 'roll-fail', ['DONE', 'STOPPED', 'INCOMPLETE'], 60_000);
    assert.equal(done.task.status, 'DONE');
    assert.equal(done.task.responses.succeeded, 20);
    const after = (await history('flaky', 'roll-fail')).filter((e) => e.id > events[events.length - 1].id);
    const second = replayRollout(after);
    assertSentOnce(second.sends, [...skipped, ...failing.slice(0, 3)]);
    assert.ok(second.maxInFlight <= 2, `retried endpoints go through the slots (${second.maxInFlight})`);
  });

  it('cancel sends to nobody more: the running ones are cancelled, the ones not sent skipped', async function () {
    const eps = ALL.slice(0, 6);
    const created = await h.post('worker', { identifier: 'roll-cancel', payload: { sleep: 30 }, endpoints: eps, rollout: { batch_size: 2 } });
    assert.equal(created.status, 201);
    assert.equal(created.json.rollout.max_errors, null);
    const cancel = await h.post('worker/roll-cancel/cancel', {});
    assert.equal(cancel.status, 200);
    assert.equal(cancel.json.status, 'CANCELLED');
    const task = await h.get('worker/roll-cancel');
    const states = Object.fromEntries(task.json.taskResponseList.map((r: any) => [r.endpoint, r.state]));
    for (const ep of eps.slice(2)) assert.equal(states[ep], 'skipped');
    for (const ep of eps.slice(0, 2)) assert.ok(['cancelled', 'running', 'succeeded'].includes(states[ep]), `${ep}: ${states[ep]}`);
    const events = await history('worker', 'roll-cancel');
    assert.equal(events.find((e) => e.kind === 'cancelled')?.detail?.skipped, 4);
    assertSentOnce(replayRollout(events).sends, eps.slice(0, 2));
  });

  if (backend === 'rabbitmq') {
    it('sends nothing to the queues of endpoints whose turn has not come; a silent endpoint goes missing and frees its slot', async function () {
      // Endpoints with no manager: their queues keep what they are sent.
      const down = ['off1', 'off2', 'off3', 'off4', 'off5'];
      const created = await h.post('worker', { identifier: 'roll-down', payload: { sleep: 0 }, endpoints: down, rollout: { batch_size: 2, max_errors: 2 } });
      assert.equal(created.status, 201);
      // A queue is declared when something is first sent to it: one that does not exist has had nothing.
      const depth = () => Promise.all(down.map((ep) => h.withChannel(async (ch) => {
        ch.on('error', () => undefined);
        return (await ch.checkQueue(TOPOLOGY.endpointQueueName('worker', ep))).messageCount;
      })
        .catch((err: { code?: number }) => { if (err.code === 404) return 0; throw err; })));
      assert.deepEqual(await depth(), [1, 1, 0, 0, 0]);
      // After wait_for_endpoints_timeout (3 s) the first two are missing: two errors, within the budget, so
      // the next two are sent; once they are missing too, the last one is skipped.
      const stopped = await h.waitForStatus('worker', 'roll-down', ['STOPPED', 'INCOMPLETE', 'DONE'], 30_000);
      assert.equal(stopped.task.status, 'STOPPED');
      assert.deepEqual(stopped.taskResponseList.map((r: any) => r.state), ['missing', 'missing', 'missing', 'missing', 'skipped']);
      assert.deepEqual(await depth(), [1, 1, 1, 1, 0]);
      assert.equal(stopped.task.responses.missing, 4);
      const events = await history('worker', 'roll-down');
      const kinds = events.map((e) => e.kind);
      assert.deepEqual(kinds, ['created', 'sent', 'missing', 'sent', 'missing', 'skipped', 'stopped']);
      const missingPage = await h.get('worker/roll-down/responses?state=missing');
      assert.equal(missingPage.json.responses.length, 4);
      const found = await h.get('worker?state=missing');
      assert.ok(found.json.tasks.some((t: any) => t.identifier === 'roll-down'));
      await h.withChannel(async (ch) => { for (const ep of down.slice(0, 4)) await ch.purgeQueue(TOPOLOGY.endpointQueueName('worker', ep)); });
    });
  }
});
