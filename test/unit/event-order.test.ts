import assert from 'node:assert/strict';
import { servable } from '../../api/storage/uncommitted';

const events = (...ids: number[]): { id: number }[] => ids.map((id) => ({ id }));
const ids = (es: { id: number }[]): number[] => es.map((e) => e.id);

describe('the stream of every task: events up to the lowest uncommitted id', function () {
  it('serves every committed event when the dirty read shows nothing else', function () {
    const r = servable(events(11, 12, 14), [11, 12, 14]);
    assert.deepEqual(ids(r.events), [11, 12, 14]);
    assert.equal(r.held, false);
  });

  it('stops before an id that only the dirty read shows (an open transaction), however old its events are', function () {
    const r = servable(events(11, 13, 14), [11, 12, 13, 14]);
    assert.deepEqual(ids(r.events), [11]);
    assert.equal(r.held, true);
    assert.equal(r.bound, 12);
    assert.deepEqual(ids(servable(events(20, 21), [19, 20, 21]).events), []);
  });

  it('stops at the lowest of several open ids, whatever order the dirty read lists them in', function () {
    assert.deepEqual(ids(servable(events(11, 12, 15, 17), [17, 16, 11, 13, 12, 15]).events), [11, 12]);
  });

  it('passes an id that neither read shows (rolled back, or deleted), with no wait', function () {
    const r = servable(events(11, 13, 15), [11, 13, 15]);
    assert.deepEqual(ids(r.events), [11, 13, 15]);
    assert.equal(r.held, false);
  });

  it('serves a committed event that an open transaction is deleting (in the committed read, not the dirty one)', function () {
    assert.deepEqual(ids(servable(events(11, 12, 13), [11, 13]).events), [11, 12, 13]);
  });

  it('sends nothing of nothing', function () {
    assert.deepEqual(servable([], [5]).events, []);
  });
});
