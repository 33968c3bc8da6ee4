import assert from 'node:assert/strict';
import { resendDelayMs } from '../../api/resend-backoff';

describe('the resend backoff', function () {
  const policy = { baseS: 5, maxS: 300 };

  it('waits the base after the first failure and doubles the wait with each failure in a row', function () {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => resendDelayMs(n, policy)), [5_000, 10_000, 20_000, 40_000, 80_000, 160_000]);
  });

  it('never waits longer than the cap, however many failures', function () {
    assert.equal(resendDelayMs(7, policy), 300_000);
    assert.equal(resendDelayMs(1_000_000, policy), 300_000);
    assert.equal(resendDelayMs(1, { baseS: 600, maxS: 300 }), 300_000);
  });

  it('takes fractions of a second and rounds to whole milliseconds', function () {
    assert.deepEqual([1, 2, 3].map((n) => resendDelayMs(n, { baseS: 0.05, maxS: 1 })), [50, 100, 200]);
    assert.equal(resendDelayMs(2, { baseS: 0.0004, maxS: 1 }), 1);
  });

  it('treats "no failure yet" as the first', function () {
    assert.equal(resendDelayMs(0, policy), 5_000);
  });
});
