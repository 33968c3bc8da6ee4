import assert from 'node:assert/strict';
import { Harness } from '../support/harness';

const MiB = 1024 * 1024;
/** The largest api.body_limit: room for a body larger than MariaDB's packet. */
const BODY_LIMIT = 64 * MiB;

/**
 * Concurrent POSTs share one INSERT (the insert batch): it stays within MariaDB's max_allowed_packet, so a
 * burst of large tasks is stored in several statements instead of failing all together; a task that alone
 * exceeds it is refused before anything is stored (RabbitMQ + MariaDB, real processes).
 */
describe('the task insert batch within max_allowed_packet (RabbitMQ + MariaDB)', function () {
  // A burst of 1 MiB tasks is tens of MiB through one pool: on a loaded machine some POSTs wait longer than
  // the default 3 s bound for their turn and would be answered 503 (as they should); this suite checks how the
  // batch is split, not latency, so its requests may wait longer.
  const h = new Harness({ env: { TASKER_API__BODY_LIMIT: String(BODY_LIMIT), TASKER_MANAGER__DB__CONNECT_TIMEOUT: '60', TASKER_MANAGER__DB__QUERY_TIMEOUT: '120' } });
  let packet = 0;

  before(async function () {
    await h.setup(this);
    // The server's own value, as the API reads it: not changed here (it is global, and shared with other suites).
    packet = Number((await h.query<{ max: number }>('SELECT @@max_allowed_packet AS max'))[0].max);
    await h.startApi();
    await h.startManager('console1');
  });

  after(async function () {
    await h.teardown();
  });

  it('stores every task of a burst of 1 MiB POSTs whose sum is well over max_allowed_packet, and runs them', async function () {
    const count = Math.ceil((2 * packet) / MiB) + 4;
    const ids = Array.from({ length: count }, (_x, i) => `big-${i}`);
    // A payload of 1 MiB with characters the SQL escapes, so that the escapes count too.
    const blob = (i: number): string => `${i}:${'x'.repeat(MiB - 4096)}${'"\\'.repeat(2048)}`;
    const answers = await Promise.all(ids.map((identifier, i) =>
      h.post('worker', { identifier, payload: { sleep: 0, blob: blob(i) }, endpoints: ['console1'] })));
    assert.deepEqual(answers.map((a) => a.status), ids.map(() => 201), JSON.stringify(answers.filter((a) => a.status !== 201).slice(0, 3)));

    const stored = await h.query<{ identifier: string; bytes: number }>(
      `SELECT identifier, LENGTH(payload) AS bytes FROM task WHERE identifier LIKE 'big-%' ORDER BY id`);
    assert.equal(stored.length, count);
    for (const row of stored) assert.ok(Number(row.bytes) > MiB, JSON.stringify(row));
    const one = await h.get('worker/big-7');
    assert.equal(one.json.task.payload.blob, blob(7));
    for (const identifier of ids) await h.waitForStatus('worker', identifier, ['DONE'], 60_000);
  });

  it('refuses with 413 payload_too_large a task that alone exceeds max_allowed_packet, storing nothing', async function () {
    if (packet + 4096 > BODY_LIMIT) this.skip();
    // Within api.body_limit, but more than one statement may carry.
    const plain = { identifier: 'too-big', payload: { blob: 'x'.repeat(packet) }, endpoints: ['console1'] };
    // Half of it as a body, twice that as SQL: each of its quotes is escaped in JSON, and each JSON escape again in SQL.
    const quotes = { identifier: 'too-big-quoted', payload: { blob: '"'.repeat(Math.ceil(packet / 4) + 1024) }, endpoints: ['console1'] };
    for (const body of [plain, quotes]) {
      const res = await h.post('worker', body);
      assert.equal(res.status, 413, JSON.stringify(res.json).slice(0, 500));
      assert.equal(res.json.error.code, 'payload_too_large');
      assert.equal((await h.get(`worker/${body.identifier}`)).status, 404);
    }
    const [{ n }] = await h.query<{ n: number }>(`SELECT COUNT(*) AS n FROM task WHERE identifier LIKE 'too-big%'`);
    assert.equal(Number(n), 0);
    // The API still stores tasks afterwards (the refusal broke no connection).
    assert.equal((await h.post('worker', { identifier: 'after', payload: { sleep: 0 }, endpoints: ['console1'] })).status, 201);
    await h.waitForStatus('worker', 'after', ['DONE']);
  });
});
