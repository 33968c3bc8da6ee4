import assert from 'node:assert/strict';
import { RESEND_BATCH } from '../../api/publisher';
import { resendDelayMs } from '../../api/resend-backoff';
import { Topology } from '../../protocol/topology';
import { Harness, Proc, storedTimeMs } from '../support/harness';
import { parseMetrics, valueOf } from '../support/prometheus';

const TOPOLOGY = new Topology('tasker', 'classic');
/** Seconds: the test mode's resend_interval (the backoff's base) and the cap this suite sets. */
const BACKOFF = { baseS: 0.5, maxS: 4 };
/** More unsendable tasks than one batch of the resend job, all with lower ids than the task that can be sent. */
const BLOCKED = RESEND_BATCH + 50;

interface BackoffRow {
  send_failures: number;
  next_send_time: string | null;
  now: string;
}

/**
 * The resend job against tasks it cannot send (their endpoint's queue gone, so that the broker returns
 * every publish as unroutable): it goes on to the tasks it can send, and tries the others again less and
 * less often, until their queue is back (RabbitMQ + MariaDB, real processes).
 */
describe('resend job: failures back off and block nothing (RabbitMQ + MariaDB)', function () {
  const h = new Harness({ waitTimeout: 30, env: { TASKER_API__RESEND_BACKOFF_MAX: String(BACKOFF.maxS) } });
  const ghost = TOPOLOGY.endpointQueue('worker', 'ghost');
  const console1 = TOPOLOGY.endpointQueue('worker', 'console1');
  let manager: Proc;

  before(async function () {
    await h.setup(this);
    await h.startApi();
    manager = await h.startManager('console1');
  });

  after(async function () {
    await h.teardown();
  });

  /** A POST that the API stores but cannot send: 201, and the task stays CREATED. */
  async function postUnsent(identifier: string, endpoint: string): Promise<void> {
    const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: [endpoint] });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.status, 'CREATED', `${identifier} was sent at once: ${JSON.stringify(res.json)}`);
  }

  const backoffOf = async (identifier: string): Promise<BackoffRow> =>
    (await h.query<BackoffRow>('SELECT send_failures, next_send_time, NOW(3) AS now FROM task WHERE identifier = ?', [identifier]))[0];

  it('sends a task behind a batch of unroutable ones, and backs those off with growing delays until their queue is back', async function () {
    // Both queues declared by the API (its first sends), then deleted behind its back: every publish to
    // them is returned unroutable until they exist again.
    for (const [identifier, endpoint] of [['prime-ghost', 'ghost'], ['prime-console1', 'console1']]) {
      assert.equal((await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: [endpoint] })).status, 201);
    }
    await h.waitForStatus('worker', 'prime-console1', ['DONE']);
    assert.equal(await manager.stop(), 0);
    await h.withChannel(async (ch) => {
      await ch.deleteQueue(ghost.name);
      await ch.deleteQueue(console1.name);
    });

    for (let i = 0; i < BLOCKED; i += 25) {
      await Promise.all(Array.from({ length: Math.min(25, BLOCKED - i) }, (_x, j) => postUnsent(`blocked-${i + j}`, 'ghost')));
    }
    await postUnsent('normal', 'console1');
    // console1's manager declares its queue again: the normal task can be sent now, the others cannot.
    manager = await h.startManager('console1');

    const normal = await h.waitForStatus('worker', 'normal', ['DONE'], 30_000);
    assert.equal(normal.taskResponseList[0].state, 'succeeded');
    const [normalRow] = await h.query<BackoffRow>('SELECT send_failures, next_send_time FROM task WHERE identifier = ?', ['normal']);
    assert.deepEqual([normalRow.send_failures, normalRow.next_send_time], [0, null]);

    // The first blocked task keeps being tried, each time later: after its k-th failure in a row it waits
    // resendDelayMs(k) on the database's clock, so each next_send_time is at least that much after the last.
    const seen: BackoffRow[] = [];
    const deadline = Date.now() + 30_000;
    while (seen.length < 3 || (seen.at(-1)?.send_failures ?? 0) < 5) {
      assert.ok(Date.now() < deadline, `backoff did not progress: ${JSON.stringify(seen)}`);
      const row = await backoffOf('blocked-0');
      if (row.send_failures !== (seen.at(-1)?.send_failures ?? 0)) seen.push(row);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const row of seen) {
      assert.ok(row.next_send_time !== null, JSON.stringify(seen));
      const wait = storedTimeMs(row.next_send_time) - storedTimeMs(row.now);
      assert.ok(wait <= BACKOFF.maxS * 1000 + 50, `waits longer than api.resend_backoff_max: ${JSON.stringify(row)}`);
    }
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i].send_failures > seen[i - 1].send_failures, JSON.stringify(seen));
      const gap = storedTimeMs(seen[i].next_send_time) - storedTimeMs(seen[i - 1].next_send_time);
      assert.ok(gap >= resendDelayMs(seen[i].send_failures, BACKOFF) - 5, `gap ${gap} ms after failure ${seen[i].send_failures}: ${JSON.stringify(seen)}`);
    }
    assert.ok(seen.some((r) => resendDelayMs(r.send_failures, BACKOFF) === BACKOFF.maxS * 1000), `the cap was not reached: ${JSON.stringify(seen)}`);
    const [{ untried }] = await h.query<{ untried: number }>(
      `SELECT COUNT(*) AS untried FROM task WHERE identifier LIKE 'blocked-%' AND (status <> 'CREATED' OR send_failures = 0)`);
    assert.equal(Number(untried), 0);
    // Every failure recorded on a task was counted (the tasks' counts can only have grown by the scrape).
    const [{ failures }] = await h.query<{ failures: number }>(`SELECT SUM(send_failures) AS failures FROM task WHERE identifier LIKE 'blocked-%'`);
    const metrics = parseMetrics(await (await fetch(`${h.baseUrl}/metrics`)).text());
    assert.ok(Number(failures) >= BLOCKED);
    assert.ok(valueOf(metrics, 'tasker_resend_failures_total', { type: 'worker' }) >= Number(failures));

    // The cause repaired: every blocked task is sent within its backoff (at most the cap) and starts afresh.
    await h.withChannel(async (ch) => {
      await ch.assertQueue(ghost.name, { durable: true, arguments: ghost.arguments });
      for (const b of ghost.bindings) await ch.bindQueue(ghost.name, b.exchange, b.key);
    });
    const sentBy = Date.now() + BACKOFF.maxS * 1000 + 15_000;
    for (;;) {
      const [{ waiting }] = await h.query<{ waiting: number }>(
        `SELECT COUNT(*) AS waiting FROM task WHERE identifier LIKE 'blocked-%' AND (status = 'CREATED' OR send_failures > 0 OR next_send_time IS NOT NULL)`);
      if (Number(waiting) === 0) break;
      assert.ok(Date.now() < sentBy, `${waiting} blocked tasks still not sent after their queue came back`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const count = await h.withChannel((ch) => ch.checkQueue(ghost.name));
    assert.equal(count.messageCount, BLOCKED);
  });
});
