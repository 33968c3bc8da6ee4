import assert from 'node:assert/strict';
import { TypeLimiter } from '../../manager/type-limiter';
import { RunHandedBackError } from '../../manager/worker-pool';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('per task type limit', function () {
  it('lets runs of a limited type start up to its limit, the others in the order they came as slots free', async function () {
    const limiter = new TypeLimiter({ deploy: 2 });
    const never = new AbortController().signal;
    const started: number[] = [];
    const releases: (() => void)[] = [];
    for (const n of [1, 2, 3, 4]) void limiter.acquire('deploy', never).then((release) => { started.push(n); releases[n] = release; });
    await tick();
    assert.deepEqual(started, [1, 2]);
    releases[2]();
    releases[2]();
    await tick();
    assert.deepEqual(started, [1, 2, 3], 'a second release of the same slot frees nothing more');
    assert.equal(limiter.runningOf('deploy'), 2);
    releases[1]();
    await tick();
    assert.deepEqual(started, [1, 2, 3, 4]);
  });

  it('does not limit a type without a limit, and hands back a waiting run when the manager stops', async function () {
    const limiter = new TypeLimiter({ deploy: 1 });
    const stop = new AbortController();
    for (let i = 0; i < 50; i++) await limiter.acquire('worker', stop.signal);
    const first = await limiter.acquire('deploy', stop.signal);
    const waiting = limiter.acquire('deploy', stop.signal);
    stop.abort();
    await assert.rejects(waiting, RunHandedBackError);
    first();
    assert.equal(limiter.runningOf('deploy'), 0, 'the withdrawn run took no slot');
    await assert.rejects(limiter.acquire('deploy', stop.signal), RunHandedBackError, 'none starts once stopping');
  });
});
