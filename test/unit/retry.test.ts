import assert from 'node:assert/strict';
import { DeadlineError } from '../../lib/errors';
import { InFlight } from '../../lib/in-flight';
import { backoffDelay, retrying, settlesWithin, sleep, withDeadline } from '../../lib/retry';

describe('retry and deadline helper', function () {
  it('doubles the delay per attempt up to the cap', function () {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, 100, 1000)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffDelay(5000, 100, 5000), 5000, 'no overflow past the cap however many attempts');
  });

  it('jitters between half the delay and all of it', function () {
    assert.equal(backoffDelay(2, 250, 2000, 'half', () => 0), 500);
    assert.equal(backoffDelay(2, 250, 2000, 'half', () => 0.5), 750);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(10, 250, 2000, 'half');
      assert.ok(d >= 1000 && d <= 2000, String(d));
    }
  });

  it('retries while allowed, with the pauses of the backoff, and answers the first success', async function () {
    const seen: number[] = [];
    const started = Date.now();
    const result = await retrying(async (attempt) => {
      seen.push(attempt);
      if (attempt < 3) throw new Error(`down ${attempt}`);
      return 'up';
    }, { base: 10, max: 20, retryIf: () => true });
    assert.equal(result, 'up');
    assert.deepEqual(seen, [0, 1, 2, 3]);
    // Pauses of 10, 20 and 20 ms (the cap).
    assert.ok(Date.now() - started >= 45, `${Date.now() - started} ms`);
  });

  it('hands an error it may not retry to the caller at once, and tells of each retried one', async function () {
    const retried: string[] = [];
    let calls = 0;
    await assert.rejects(retrying(async () => {
      calls++;
      throw new Error(calls === 1 ? 'transient' : 'fatal');
    }, { base: 1, retryIf: (err) => (err as Error).message === 'transient', onRetry: (err, attempt) => retried.push(`${attempt}: ${(err as Error).message}`) }), /fatal/);
    assert.equal(calls, 2);
    assert.deepEqual(retried, ['0: transient']);
  });

  it('stops after `tries` tries, and uses a delay of its own shape when given', async function () {
    const delays: number[] = [];
    let calls = 0;
    await assert.rejects(retrying(async () => { calls++; throw new Error('deadlock'); }, {
      tries: 5, retryIf: () => true, delay: (attempt) => { delays.push(attempt); return 1; },
    }), /deadlock/);
    assert.equal(calls, 5);
    assert.deepEqual(delays, [0, 1, 2, 3]);
  });

  it('rejects with a DeadlineError naming the wait once the deadline passed', async function () {
    const err = await withDeadline(new Promise(() => undefined), 20, 'the probe').catch((e: unknown) => e);
    assert.ok(err instanceof DeadlineError);
    assert.equal(err.code, 'deadline_exceeded');
    assert.equal(err.what, 'the probe');
    assert.match(err.message, /the probe: no outcome within 20 ms/);
  });

  it('answers the promise\'s own outcome before the deadline, and an error of the caller\'s making after it', async function () {
    assert.equal(await withDeadline(sleep(5).then(() => 7), 1000, 'quick'), 7);
    await assert.rejects(withDeadline(Promise.reject(new Error('own')), 1000, 'x'), /own/);
    const mine = new Error('mine');
    const slow = sleep(60);
    await assert.rejects(withDeadline(slow, 10, () => mine), (e: unknown) => e === mine);
    await slow;
  });

  it('tells whether a wait settled in time', async function () {
    assert.equal(await settlesWithin(sleep(5), 500), true);
    assert.equal(await settlesWithin(Promise.reject(new Error('failed, but settled')), 500), true);
    assert.equal(await settlesWithin(new Promise(() => undefined), 10), false);
    const work = new InFlight();
    void work.track(sleep(300));
    assert.equal(await work.settle(10), false, 'a shutdown stops waiting at its deadline');
    assert.equal(await work.settle(1000), true);
  });
});
