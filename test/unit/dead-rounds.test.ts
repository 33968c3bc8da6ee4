import assert from 'node:assert/strict';
import { DeadRounds } from '../../manager/dead-rounds';

describe('DeadRounds', function () {
  it('stands a round for every round up to it, and keeps the highest', function () {
    const d = new DeadRounds(10);
    d.add(7, 2);
    d.add(7, 1);
    assert.deepEqual([0, 1, 2, 3].map((r) => d.isDead(7, r)), [true, true, true, false]);
    assert.equal(d.isDead(8, 0), false);
  });

  it('evicts the oldest task (lowest id) past its limit, whatever the order of adds, and asks about what it forgot', function () {
    const d = new DeadRounds(3);
    // Newest first, as the server side lists them.
    for (const id of [50, 40, 30, 20, 10]) d.add(id, 0);
    assert.equal(d.size, 3);
    assert.deepEqual([50, 40, 30].map((id) => d.isDead(id, 0)), [true, true, true]);
    assert.deepEqual([20, 10].map((id) => d.isDead(id, 0)), [false, false]);
    assert.deepEqual([10, 20, 21, 30, 60].map((id) => d.uncertain(id)), [true, true, false, false, false]);
    // A newer cancel still evicts the oldest.
    d.add(60, 1);
    assert.equal(d.isDead(30, 0), false);
    assert.equal(d.isDead(60, 1), true);
    assert.equal(d.uncertain(30), true);
    assert.equal(d.uncertain(40), false);
  });

  it('after a cut list, knows in full only the tasks from the list\'s oldest on', function () {
    const d = new DeadRounds(100);
    d.sync([{ task_id: 9, round: 0 }, { task_id: 5, round: 1 }], true);
    assert.deepEqual([4, 5, 6, 9].map((id) => d.uncertain(id)), [true, false, false, false]);
    d.sync([{ task_id: 9, round: 0 }], false);
    assert.equal(d.uncertain(4), false);
    assert.equal(d.isDead(5, 1), true, 'what it knew stays');
    d.sync([], true);
    assert.equal(d.uncertain(1_000_000), true, 'a cut empty list covers nothing');
  });

  it('stays consistent over many adds in random order', function () {
    const d = new DeadRounds(100);
    const ids = Array.from({ length: 1000 }, (_v, i) => i + 1).sort(() => Math.random() - 0.5);
    for (const id of ids) d.add(id, 0);
    assert.equal(d.size, 100);
    for (let id = 901; id <= 1000; id++) assert.equal(d.isDead(id, 0), true);
    for (let id = 1; id <= 900; id++) assert.equal(d.uncertain(id), true);
  });
});
