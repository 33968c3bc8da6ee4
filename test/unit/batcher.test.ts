import assert from 'node:assert/strict';
import { Batcher } from '../../lib/batcher';

describe('batcher (group commit)', function () {
  it('writes calls made together as one batch, within maxBatch, one result per caller', async function () {
    const batches: number[][] = [];
    const b = new Batcher<number, number>(async (items) => { batches.push(items); return items.map((i) => i * 10); }, { maxBatch: 3 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => b.submit(i)));
    assert.deepEqual(results, [10, 20, 30, 40, 50]);
    assert.deepEqual(batches, [[1, 2, 3], [4, 5]]);
  });

  it('keeps a batch within maxWeight, but always takes at least one item', async function () {
    const batches: number[][] = [];
    const b = new Batcher<number, void>(async (items) => { batches.push(items); return items.map(() => undefined); },
      { maxBatch: 10, weigh: (i) => i, maxWeight: 10 });
    await Promise.all([4, 5, 6, 20, 1].map((i) => b.submit(i)));
    assert.deepEqual(batches, [[4, 5], [6], [20], [1]]);
  });

  it('writes a failed batch again item by item when split says so, so that one bad item fails alone', async function () {
    const b = new Batcher<number, number>(async (items) => {
      if (items.includes(13)) throw new Error('bad item');
      return items;
    }, { maxBatch: 10, split: (err) => (err as Error).message === 'bad item' });
    const settled = await Promise.allSettled([12, 13, 14].map((i) => b.submit(i)));
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
  });

  it('fails every caller of the batch for an error split does not claim', async function () {
    let calls = 0;
    const b = new Batcher<number, number>(async () => { calls++; throw new Error('database down'); },
      { maxBatch: 10, split: (err) => (err as Error).message === 'bad item' });
    const settled = await Promise.allSettled([1, 2, 3].map((i) => b.submit(i)));
    assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'rejected']);
    assert.equal(calls, 1);
  });
});
