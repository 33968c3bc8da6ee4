import assert from 'node:assert/strict';
import type { StoredEvent } from '../../api/storage/history';
import { GAP_WAIT_MS, upToGap } from '../../api/watch-hub';

const NOW = Date.parse('2026-11-24T12:00:00.000Z');

function event(id: number, ageMs: number): StoredEvent {
  return { id, task_id: 1, type: 'worker', identifier: 't', time: new Date(NOW - ageMs).toISOString(), kind: 'created', detail: null, actor: null };
}

const ids = (events: StoredEvent[]): number[] => events.map((e) => e.id);

describe('the stream of every task: events up to a gap', function () {
  it('passes consecutive ids', function () {
    assert.deepEqual(ids(upToGap(10, [event(11, 0), event(12, 0), event(13, 0)], NOW)), [11, 12, 13]);
  });

  it('holds back what follows a missing id while that id may still commit', function () {
    assert.deepEqual(ids(upToGap(10, [event(11, 0), event(13, 10), event(14, 0)], NOW)), [11]);
    assert.deepEqual(ids(upToGap(10, [event(12, GAP_WAIT_MS - 1)], NOW)), []);
  });

  it('passes a missing id once the event after it is older than the wait (a rolled-back id)', function () {
    assert.deepEqual(ids(upToGap(10, [event(11, 0), event(13, GAP_WAIT_MS), event(15, 5)], NOW)), [11, 13]);
    assert.deepEqual(ids(upToGap(0, [event(7, 60_000), event(9, 60_000), event(10, 0)], NOW)), [7, 9, 10]);
  });

  it('sends nothing of nothing', function () {
    assert.deepEqual(upToGap(10, [], NOW), []);
  });
});
