import assert from 'node:assert/strict';
import { TooManyStreamsError } from '../../lib/errors';
import { StreamLimits } from '../../api/stream-limits';

describe('stream limits', function () {
  it('refuses a client past its own bound, others still admitted', function () {
    const limits = new StreamLimits({ maxStreams: 10, maxPerClient: 2 });
    limits.acquire('a');
    limits.acquire('a');
    assert.throws(() => limits.acquire('a'), (err: unknown) => err instanceof TooManyStreamsError && err.status === 503 && err.retryAfter > 0);
    limits.acquire('b');
    assert.equal(limits.open, 3);
  });

  it('refuses everyone past the total, and admits again once a stream ends', function () {
    const limits = new StreamLimits({ maxStreams: 2, maxPerClient: 5 });
    const release = limits.acquire('a');
    limits.acquire('b');
    assert.throws(() => limits.acquire('c'), TooManyStreamsError);
    release();
    release(); // a second release frees nothing more
    assert.equal(limits.open, 1);
    limits.acquire('c');
    assert.throws(() => limits.acquire('d'), TooManyStreamsError);
  });
});
