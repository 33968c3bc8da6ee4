import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { encodeCursor } from '../../api/query';
import { ensureDebianPackage } from '../support/debian';
import { freePort, Harness } from '../support/harness';
import { readEventStream, SseEvent } from '../support/sse';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** Longer than the 5 s the stream of every task used to wait for a missing id before passing it. */
const HOLD_MS = 6500;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A live stream of `GET /events` whose events can be looked at while it runs. */
function openStream(base: string, lastEventId: number | undefined): { seen: () => SseEvent[]; until: (lastId: number) => Promise<void>; close: () => void } {
  let seen: SseEvent[] = [];
  let target = Number.POSITIVE_INFINITY;
  const abort = new AbortController();
  let reached = (): void => undefined;
  const done = readEventStream(`${base}/events`, {
    lastEventId, timeoutMs: 120_000, signal: abort.signal,
    done: (events) => {
      seen = events;
      if (events.some((e) => e.id >= target)) reached();
      return false;
    },
  });
  done.catch(() => undefined);
  return {
    seen: () => seen,
    until: async (lastId) => {
      target = lastId;
      const deadline = Date.now() + 30_000;
      // `done` runs on each chunk (a keep-alive comment too); poll as well, for what came before `until`.
      while (!seen.some((e) => e.id >= lastId)) {
        if (Date.now() > deadline) throw new Error(`stream: no event ${lastId} within 30 s; got ${JSON.stringify(seen.map((e) => e.id))}`);
        await Promise.race([new Promise<void>((resolve) => { reached = resolve; }), sleep(200)]);
      }
    },
    close: () => abort.abort(),
  };
}

/** Every event after `after` as `GET /events` pages them, following next_cursor. */
async function listAfter(base: string, after: number): Promise<number[]> {
  const ids: number[] = [];
  let cursor: string | null = encodeCursor(after);
  while (cursor !== null) {
    const res = await fetch(`${base}/events?limit=3&cursor=${cursor}`);
    assert.equal(res.status, 200);
    const page = await res.json() as { events: { id: number }[]; next_cursor: string | null };
    ids.push(...page.events.map((e) => e.id));
    cursor = page.next_cursor;
  }
  return ids;
}

function ascendingOnce(ids: number[]): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids not strictly ascending: ${JSON.stringify(ids)}`);
}

/**
 * GET /events (the JSON list and the stream of every task) on RabbitMQ and MariaDB, while another
 * transaction holds an event id open and later ids commit: nothing past the open id is served until it
 * commits, and then everything is, once and in order. Once with the API's clock right, once with the
 * reading API's clock minutes ahead (libfaketime), which made the former time-based hold pass the gap.
 */
describe('GET /events: never past an uncommitted event', function () {
  const h = new Harness({ waitTimeout: 3 });
  const run = randomBytes(4).toString('hex');
  let skewedBase = '';
  let held: mysql.Connection | null = null;

  before(async function () {
    await h.setup(this);
    await ensureDebianPackage('faketime', ['test', ['-f', LIBFAKETIME]]);
    await h.startSystem([{ name: 'ep1', task_types: ['worker', 'backup'] }]);
    const port = await freePort();
    await h.startApi(port, { LD_PRELOAD: LIBFAKETIME, FAKETIME: '+10m' });
    skewedBase = `http://127.0.0.1:${port}`;
  });

  afterEach(async function () {
    await held?.end().catch(() => undefined);
    held = null;
  });

  after(async function () {
    await h.teardown();
  });

  it('runs the skewed API with its clock minutes ahead (the precondition of the second case)', async function () {
    const res = await fetch(`${skewedBase}/healthz`);
    const skew = Date.parse(String(res.headers.get('date'))) - Date.now();
    assert.ok(skew > 9 * 60_000, `the skewed API's Date header is only ${skew} ms ahead`);
  });

  async function done(identifier: string): Promise<number> {
    const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: ['ep1'] });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    await h.waitForStatus('worker', identifier, ['DONE']);
    const [row] = await h.query<{ id: number }>('SELECT id FROM task WHERE identifier = ?', [identifier]);
    return Number(row.id);
  }

  async function committedAfter(after: number): Promise<number[]> {
    return (await h.query<{ id: number }>('SELECT id FROM task_event WHERE id > ? ORDER BY id', [after])).map((r) => Number(r.id));
  }

  async function scenario(name: string, readBase: string): Promise<void> {
    // A finished task, whose row no writer locks any more: the held event below belongs to it.
    const taskId = await done(`order-${run}-${name}-first`);
    const before = Math.max(0, ...await committedAfter(0));
    const stream = openStream(readBase, before);
    try {
      // An event inserted as History.append does it, backdated by an hour, in a transaction left open.
      held = await mysql.createConnection({ uri: h.config.manager.db.uri });
      await held.query('START TRANSACTION');
      await held.query(`INSERT INTO task_event (task_id, time, kind, detail, actor)
        SELECT ?, NOW(3) - INTERVAL 1 HOUR, 'retried', NULL, 'test:held'`, [taskId]);
      const [[{ id: heldRaw }]] = await held.query('SELECT LAST_INSERT_ID() AS id') as unknown as [[{ id: number }]];
      const heldId = Number(heldRaw);

      // Later events commit meanwhile (through the unskewed API), and then the old hold's 5 s pass.
      for (let i = 0; i < 3; i++) await done(`order-${run}-${name}-${i}`);
      await sleep(HOLD_MS);
      const later = (await committedAfter(before)).filter((id) => id > heldId);
      assert.ok(later.length >= 3, `precondition: events committed after the held id ${heldId}: ${JSON.stringify(later)}`);

      assert.ok(stream.seen().every((e) => e.id < heldId), `the stream passed the open id ${heldId}: ${JSON.stringify(stream.seen().map((e) => e.id))}`);
      const listed = await listAfter(readBase, before);
      assert.ok(listed.every((id) => id < heldId), `the list passed the open id ${heldId}: ${JSON.stringify(listed)}`);
      // A stream "from now on" opened now starts before the open id, not after the newest committed one.
      const fromNow = openStream(readBase, undefined);
      try {
        await sleep(1500);
        assert.deepEqual(fromNow.seen().map((e) => e.id), [], 'a stream from now on sent events past the open id');

        await held.query('COMMIT');
        const all = await committedAfter(before);
        assert.ok(all.includes(heldId));
        const last = all[all.length - 1];

        await stream.until(last);
        const streamed = stream.seen().map((e) => e.id);
        ascendingOnce(streamed);
        assert.deepEqual(streamed, all, 'the stream, after the commit: every event once, in id order, none skipped');
        assert.equal(stream.seen().find((e) => e.id === heldId)?.data.actor, 'test:held');

        const relisted = await listAfter(readBase, before);
        assert.deepEqual(relisted, all, 'the list, after the commit: every event once, in id order, none skipped');

        await fromNow.until(last);
        assert.deepEqual(fromNow.seen().map((e) => e.id), all.filter((id) => id >= heldId), 'the stream from now on: the held event and all after it');
      } finally {
        fromNow.close();
      }
    } finally {
      stream.close();
    }
  }

  it('serves nothing past an open transaction\'s event, then that event and the rest, in order, exactly once', async function () {
    await scenario('plain', h.baseUrl);
  });

  it('does the same on an API whose clock is 10 minutes ahead', async function () {
    await scenario('skewed', skewedBase);
  });
});
