import assert from 'node:assert/strict';
import { FailureLimiter } from '../../api/failure-limiter';
import { NegativeCache } from '../../api/negative-cache';

describe('failed-attempt bookkeeping (api/failure-limiter.ts, api/negative-cache.ts)', function () {
  it('limits an id after `limit` failures within the window, for the rest of it', function () {
    const l = new FailureLimiter(3, 60_000, 100);
    for (let i = 0; i < 3; i++) {
      assert.equal(l.retryAfter('a', 1000), 0);
      l.fail('a', 1000);
    }
    assert.equal(l.retryAfter('a', 1000), 60);
    assert.equal(l.retryAfter('a', 31_000), 30);
    assert.equal(l.retryAfter('b', 1000), 0, 'other ids are not limited');
    assert.equal(l.retryAfter('a', 61_000), 0, 'the window ended');
  });

  it('keeps at most `capacity` ids, forgetting the least recently failed', function () {
    const l = new FailureLimiter(1, 60_000, 1000);
    l.fail('first', 0);
    for (let i = 0; i < 100_000; i++) l.fail(`made-up-${i}`, 0);
    assert.equal(l.size, 1000);
    assert.equal(l.retryAfter('first', 0), 0, 'forgotten');
    assert.equal(l.retryAfter('made-up-99999', 0), 60);
  });

  it('remembers unknown keys for its time, at most `capacity` of them', function () {
    const c = new NegativeCache(5000, 10);
    c.add('k', 0);
    assert.equal(c.has('k', 4999), true);
    assert.equal(c.has('k', 5000), false);
    for (let i = 0; i < 1000; i++) c.add(`k${i}`, 0);
    assert.equal(c.size, 10);
    assert.equal(c.has('k999', 1), true);
    assert.equal(c.has('k0', 1), false);
    const off = new NegativeCache(0, 10);
    off.add('k', 0);
    assert.equal(off.has('k', 0), false, 'api.auth_cache 0: nothing remembered');
  });
});
