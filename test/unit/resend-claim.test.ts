import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { Publisher, RESEND_BATCH } from '../../api/publisher';
import { resendDelayMs } from '../../api/resend-backoff';
import { createDataSource, migrate } from '../../api/storage/database';
import { History } from '../../api/storage/history';
import { readTime } from '../../api/storage/sql-values';
import { TaskStore } from '../../api/storage/task-store';
import { ResponseRows } from '../../api/storage/response-rows';
import { BrokerUnavailableError } from '../../lib/errors';
import { createLogger } from '../../lib/logger';
import type { ServerTransport } from '../../protocol/server-transport';
import type { TaskMessage } from '../../protocol/wire';
import { TLS_OFF } from '../../config/schema';

/**
 * The resend job's backoff on the standalone backend's database (SQLite): the claim's due test and the
 * failures it records, judged by SQLite's clock, with a broker that refuses every send to one endpoint.
 */
describe('resend backoff (SQLite)', function () {
  let dir: string;
  let ds: DataSource;
  let store: TaskStore;
  let refused: Set<string>;
  let published: TaskMessage[];
  const backoff = { baseS: 60, maxS: 300 };

  const transport = {
    connected: true,
    publishTask: async (msg: TaskMessage) => {
      if (msg.endpoints.some((ep) => refused.has(ep))) throw new BrokerUnavailableError(`message ${msg.id} reached no queue`);
      published.push(msg);
    },
  } as unknown as ServerTransport;

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-resend-'));
    ds = createDataSource({ uri: `sqlite:${path.join(dir, 't.sqlite')}`, verbose: false, admin_uri: '', pool_size: 1, connect_timeout: 1, query_timeout: 10, tls: TLS_OFF }, dir);
    await ds.initialize();
    await migrate(ds);
    store = new TaskStore(ds, new History(ds), () => undefined, new ResponseRows(ds));
    refused = new Set(['ghost']);
    published = [];
  });

  afterEach(async function () {
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** CREATED tasks, stored a minute ago (past api.resend_after), in this order. */
  async function created(endpoints: string[]): Promise<void> {
    await store.createMany(endpoints.map((ep, i) => ({
      type: 'worker', identifier: `t-${i}-${ep}`, payload: null, endpoints: [ep], expected: [ep], requestHash: 'h', timeout: 3600, actor: null, rollout: null,
    })));
    // Tasks are stored at the database's time: moved a minute back, as if stored then.
    await ds.query(`UPDATE task SET start_time = strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 seconds'),
      last_modified_time = strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 seconds')`);
  }

  const rows = (): Promise<{ endpoint: string; status: string; send_failures: number; next_send_time: string | null; now: string }[]> =>
    ds.query(`SELECT json_extract(endpoints, '$[0]') AS endpoint, status, send_failures, next_send_time,
      strftime('%Y-%m-%d %H:%M:%f', 'now') AS now FROM task ORDER BY id`);

  it('sends the task behind more refused ones than a batch in one run, and leaves those for their backoff', async function () {
    await created([...Array.from({ length: RESEND_BATCH + 20 }, () => 'ghost'), 'console1']);
    const failures: string[] = [];
    const publisher = new Publisher(transport, store, createLogger({}, 'error'), { backoff, onResendFailure: (type) => failures.push(type) });

    assert.equal(await publisher.resendUnsent(10_000, new Date()), 1);
    assert.deepEqual(published.map((m) => m.endpoints), [['console1']]);
    assert.equal(failures.length, RESEND_BATCH + 20);
    const after = await rows();
    assert.equal(after.at(-1)?.status, 'SENT');
    for (const r of after.slice(0, -1)) {
      assert.equal(r.status, 'CREATED');
      assert.equal(r.send_failures, 1);
      // On the database's clock: a minute from the run.
      const wait = readTime(r.next_send_time).getTime() - readTime(r.now).getTime();
      assert.ok(wait > 59_000 && wait <= 60_000, `${wait} ms`);
    }

    // Not due yet: the next run tries none of them.
    assert.equal(await publisher.resendUnsent(10_000, new Date()), 0);
    assert.equal(failures.length, RESEND_BATCH + 20);
  });

  it('doubles the wait with each failure in a row, and clears it with the first send that succeeds', async function () {
    await created(['ghost', 'ghost']);
    const publisher = new Publisher(transport, store, createLogger({}, 'error'), { backoff });
    const due = (): Promise<unknown> => ds.query(`UPDATE task SET next_send_time = strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 seconds')`);
    for (let failures = 1; failures <= 4; failures++) {
      assert.equal(await publisher.resendUnsent(10_000, new Date()), 0);
      for (const r of await rows()) {
        assert.equal(r.send_failures, failures);
        const wait = readTime(r.next_send_time).getTime() - readTime(r.now).getTime();
        const expected = resendDelayMs(failures, backoff);
        assert.ok(wait > expected - 1000 && wait <= expected, `failure ${failures}: ${wait} ms`);
      }
      await due();
    }
    refused.clear();
    assert.equal(await publisher.resendUnsent(10_000, new Date()), 2);
    for (const r of await rows()) assert.deepEqual([r.status, r.send_failures, r.next_send_time], ['SENT', 0, null]);
  });

  it('writes the response rows of a task stored without them before sending it, once, to every expected endpoint', async function () {
    const expected = ['console1', 'console2', 'console3'];
    await store.createMany([{ type: 'worker', identifier: 'large', payload: null, endpoints: null, expected, requestHash: 'h', timeout: 3600, actor: null, rollout: null, deferRows: true }]);
    await ds.query(`UPDATE task SET last_modified_time = strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 seconds')`);
    assert.deepEqual(await ds.query('SELECT endpoint FROM task_response'), []);
    const publisher = new Publisher(transport, store, createLogger({}, 'error'), { backoff });
    // Held for the API that stored it, which sends it in its turn …
    assert.equal(await publisher.resendUnsent(10_000, new Date()), 0);
    assert.equal(published.length, 0);
    // … until that API stops renewing the hold.
    await ds.query(`UPDATE task SET next_send_time = strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 seconds')`);
    assert.equal(await publisher.resendUnsent(10_000, new Date()), 1);
    assert.deepEqual(published.map((m) => m.endpoints), [expected]);
    assert.deepEqual((await ds.query('SELECT endpoint, state FROM task_response ORDER BY id') as { endpoint: string; state: string }[]).map((r) => [r.endpoint, r.state]),
      expected.map((e) => [e, 'pending']));
    assert.deepEqual(await ds.query('SELECT rows_pending FROM task'), [{ rows_pending: 0 }]);
    // Written once: asking again finds nothing to write.
    assert.deepEqual(await store.responseRows.write([1]), []);
  });
});
