import assert from 'node:assert/strict';
import { resolveRollout, rolloutView } from '../../api/rollout';

describe('rollout sizes', function () {
  it('takes numbers as they are', function () {
    assert.deepEqual(resolveRollout({ batch_size: 3, max_errors: 2 }, 20), { batch_size: 3, max_errors: 2, request: { batch_size: 3, max_errors: 2 } });
    // A batch larger than the fleet is the whole fleet at once; the number is kept as asked.
    assert.equal(resolveRollout({ batch_size: 50 }, 20).batch_size, 50);
  });

  it('rounds a batch share up, at least 1', function () {
    const batch = (p: string, n: number): number => resolveRollout({ batch_size: p }, n).batch_size;
    assert.equal(batch('10%', 30), 3, 'exact, without floating-point residue');
    assert.equal(batch('10%', 31), 4);
    assert.equal(batch('10%', 5), 1);
    assert.equal(batch('1%', 1), 1);
    assert.equal(batch('33%', 100), 33);
    assert.equal(batch('100%', 7), 7);
    assert.equal(batch('50%', 3), 2);
  });

  it('rounds an error share down, to 0 if need be', function () {
    const max = (p: string, n: number): number | null => resolveRollout({ batch_size: 1, max_errors: p }, n).max_errors;
    assert.equal(max('5%', 10), 0, '5% of 10 endpoints tolerates none');
    assert.equal(max('5%', 20), 1);
    assert.equal(max('10%', 30), 3);
    assert.equal(max('10%', 39), 3);
    assert.equal(max('0%', 100), 0);
    assert.equal(max('100%', 12), 12);
    assert.equal(resolveRollout({ batch_size: 1 }, 12).max_errors, null, 'no max_errors: no limit');
  });

  it('keeps the request as asked', function () {
    assert.deepEqual(resolveRollout({ batch_size: '10%', max_errors: '5%' }, 40).request, { batch_size: '10%', max_errors: '5%' });
    assert.deepEqual(resolveRollout({ batch_size: '10%' }, 40).request, { batch_size: '10%' });
  });

  it('shows the progress from the counts per state', function () {
    const counts: Record<string, number> = { queued: 10, pending: 1, running: 2, succeeded: 4, failed: 1, missing: 1, skipped: 0 };
    const view = rolloutView({ batch_size: 3, max_errors: 2, request: { batch_size: 3, max_errors: 2 } }, 19, (s) => counts[s] ?? 0);
    assert.deepEqual(view, { batch_size: 3, max_errors: 2, request: { batch_size: 3, max_errors: 2 }, sent: 9, running: 3, remaining: 10, errors: 2 });
  });
});
