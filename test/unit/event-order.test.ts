import assert from 'node:assert/strict';
import type { History, StoredEvent } from '../../api/storage/history';
import { servable } from '../../api/storage/uncommitted';
import { HELD_REREAD_MS, WatchHub } from '../../api/watch-hub';
import { createLogger } from '../../lib/logger';
import type { ServerTransport } from '../../protocol/server-transport';

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

describe('the stream of every task in WatchHub: held events', function () {
  const event = (id: number): StoredEvent => ({ id, task_id: id, type: 'worker', identifier: `t${id}`, time: '2026-01-01T00:00:00.000Z', kind: 'created', detail: null, actor: null });

  /** A database whose events `open` are not committed yet: `after` answers as History.after does. */
  function fakeHistory(committed: Set<number>, open: Set<number>): History {
    return {
      after: (afterId: number) => {
        const ids = [...committed].filter((id) => id > afterId).sort((a, b) => a - b);
        const bound = Math.min(...[...open].filter((id) => id > afterId));
        const ready = ids.filter((id) => id < bound);
        return Promise.resolve({ events: ready.map(event), held: ready.length < ids.length });
      },
    } as unknown as History;
  }

  const transport = { publishNotice: () => Promise.resolve(), consumeNotices: () => Promise.resolve() } as unknown as ServerTransport;

  async function until(check: () => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('not within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('sends nothing past an open id, reads again by itself, and goes on once it committed or rolled back', async function () {
    this.timeout(10_000);
    const committed = new Set([1, 3, 5]);
    const open = new Set([2, 4]);
    const hub = new WatchHub(fakeHistory(committed, open), transport, createLogger({}, 'error'));
    const sent: number[] = [];
    hub.streamAll(null, 0, { send: (es) => sent.push(...es.map((e) => e.id)), ping: () => undefined, close: () => undefined });
    try {
      await until(() => sent.length === 1);
      assert.deepEqual(sent, [1]);
      // Held for longer than one re-read: nothing more is sent meanwhile.
      await new Promise((resolve) => setTimeout(resolve, HELD_REREAD_MS + 300));
      assert.deepEqual(sent, [1]);
      // 2 commits, 4 rolls back; no notice: the held re-read finds both out.
      committed.add(2);
      open.delete(2);
      open.delete(4);
      await until(() => sent.length === 4);
      assert.deepEqual(sent, [1, 2, 3, 5]);
    } finally {
      hub.closeAll();
    }
  });
});
