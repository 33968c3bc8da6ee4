import assert from 'node:assert/strict';
import { confirmWaitMs, MAX_CONFIRM_WAIT_MS } from '../../protocol/rabbitmq/rabbit-broker';

/** A publish's wait for its confirm grows with the queues it reaches (a broadcast to a large fleet), within bounds. */
describe('the wait for a publish\'s confirm', function () {
  it('is api.publish_timeout up to 1,000 queues, and as much again per 1,000 more', function () {
    assert.deepEqual([1, 0, 1000, 1001, 2000, 10_000].map((copies) => confirmWaitMs(5000, copies)), [5000, 5000, 5000, 10_000, 10_000, 50_000]);
  });

  it('is at most a minute however many queues, unless api.publish_timeout is longer', function () {
    assert.equal(confirmWaitMs(5000, 1_000_000), MAX_CONFIRM_WAIT_MS);
    assert.equal(confirmWaitMs(600_000, 1), 600_000);
    assert.equal(confirmWaitMs(100, 1), 100);
  });
});
