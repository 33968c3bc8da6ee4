import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { validateConfig } from '../../config/schema';
import { RetentionJob } from '../../api/retention';
import { createDataSource } from '../../api/storage/database';
import { RetentionStore } from '../../api/storage/retention-store';
import { sqlTime } from '../../api/storage/sql-values';
import { freePort, Harness, Proc } from '../support/harness';
import { parseMetrics, valueOf } from '../support/prometheus';

const BULK = 4000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The retention job against real processes: ended tasks last changed before the cutoff go with everything
 * recorded about them; recent ones, and unfinished ones however old, stay. Two API instances run the job
 * over the same database at once.
 */
describe('retention of ended tasks (RabbitMQ + MariaDB, real processes)', function () {
  const h = new Harness({ waitTimeout: 3, handlerTimeout: 3 });
  let sql: mysql.Pool;
  const apis: Proc[] = [];
  const ports: number[] = [];

  before(async function () {
    await h.setup(this);
    sql = mysql.createPool({ uri: h.config.manager.db.uri, connectionLimit: 2, dateStrings: true });
  });

  after(async function () {
    await sql?.end();
    await h.teardown();
  });

  const count = async (query: string, params: unknown[] = []): Promise<number> => {
    const [rows] = await sql.query(query, params) as unknown as [{ n: number | string }[]];
    return Number(rows[0].n);
  };
  const ids = async (pattern: string): Promise<number[]> => {
    const [rows] = await sql.query('SELECT id FROM task WHERE identifier LIKE ? ORDER BY id', [pattern]) as unknown as [{ id: number }[]];
    return rows.map((r) => Number(r.id));
  };
  const scrape = async (port: number) => parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());

  it('removes old ended tasks with their responses, history and retry answers, once, with two instances running it', async function () {
    // Real tasks through the system first: they carry responses and history as the system writes them.
    const first = await h.startApi();
    await h.startManager('console1');
    await h.startManager('console2');
    const names = ['old-done', 'old-cancelled', 'old-stopped', 'old-incomplete', 'old-sent', 'old-created', 'recent-done'];
    for (const identifier of names) {
      assert.equal((await h.post('worker', { identifier, payload: { sleep: 0.01 }, endpoints: ['console1', 'console2'] })).status, 201);
    }
    for (const identifier of names) await h.waitForStatus('worker', identifier, ['DONE']);
    assert.equal(await first.stop(), 0);

    // The statuses the job must tell apart, and thousands of ended tasks cloned from old-done.
    const set = (identifier: string, status: string): Promise<unknown> =>
      sql.query('UPDATE task SET status = ? WHERE identifier = ?', [status, identifier]);
    await set('old-cancelled', 'CANCELLED');
    await set('old-stopped', 'STOPPED');
    await set('old-incomplete', 'INCOMPLETE');
    await set('old-sent', 'SENT');
    await set('old-created', 'CREATED');
    await sql.query(`INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count, received_count,
        finished_count, failed_count, request_hash, start_time, sent_time, end_time, last_modified_time)
      SELECT CONCAT('old-bulk-', s.seq), t.type, t.status, t.payload, t.endpoints, t.expected_endpoints, t.expected_count, t.received_count,
        t.finished_count, t.failed_count, t.request_hash, t.start_time, t.sent_time, t.end_time, t.last_modified_time
      FROM task t JOIN seq_1_to_${BULK} s WHERE t.identifier = 'old-done'`);
    await sql.query(`INSERT INTO task_response (task_id, endpoint, state, \`round\`, status, errnr, payload, attempts, start_time, last_modified_time)
      SELECT b.id, r.endpoint, r.state, r.round, r.status, r.errnr, r.payload, r.attempts, r.start_time, r.last_modified_time
      FROM task b JOIN task o ON o.identifier = 'old-done' JOIN task_response r ON r.task_id = o.id WHERE b.identifier LIKE 'old-bulk-%'`);
    await sql.query(`INSERT INTO task_event (task_id, time, kind, detail)
      SELECT b.id, e.time, e.kind, e.detail FROM task b JOIN task o ON o.identifier = 'old-done' JOIN task_event e ON e.task_id = o.id
      WHERE b.identifier LIKE 'old-bulk-%'`);
    const old = await ids('old-%');
    const recent = await ids('recent-%');
    for (const id of [...old, ...recent]) {
      await sql.query(`INSERT INTO request_key (scope, idempotency_key, response, created_time) VALUES (?, 'k', '{"retried":[]}', NOW(3))`, [`retry:${id}`]);
    }
    // Two days ago, against a retention of one day.
    await sql.query(`UPDATE task SET end_time = NOW(3) - INTERVAL 2 DAY, last_modified_time = NOW(3) - INTERVAL 2 DAY WHERE identifier LIKE 'old-%'`);
    const due = BULK + 4;
    const unfinished = [...await ids('old-sent'), ...await ids('old-created')];
    assert.equal(await count(`SELECT COUNT(*) AS n FROM task WHERE status IN ('DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED') AND identifier LIKE 'old-%'`), due);
    assert.equal(await count(`SELECT COUNT(*) AS n FROM task_response WHERE task_id IN (SELECT id FROM task WHERE identifier LIKE 'old-bulk-%')`), 2 * BULK);
    const eventsPerTask = await count(`SELECT COUNT(*) AS n FROM task_event e JOIN task t ON t.id = e.task_id WHERE t.identifier = 'old-done'`);
    assert.ok(eventsPerTask >= 3);

    // Small batches so that the two instances take turns over many of them.
    Object.assign(h.env, { TASKER_API__RETENTION: '1d', TASKER_API__RETENTION_BATCH: '40', TASKER_API__RETENTION_INTERVAL: '0.2' });
    ports.push(h.port, await freePort());
    apis.push(...await Promise.all([h.startApi(), h.startApi(ports[1])]));

    const deadline = Date.now() + 120_000;
    while (await count(`SELECT COUNT(*) AS n FROM task WHERE identifier LIKE 'old-%'`) > unfinished.length) {
      if (Date.now() > deadline) throw new Error('the due tasks were not all removed within 120 s');
      await sleep(200);
    }
    // A run may still be finishing its last, empty, batch.
    await sleep(500);

    // Gone, with everything recorded about them.
    const removed = old.filter((id) => !unfinished.includes(id));
    assert.equal(removed.length, due);
    assert.equal(await count(`SELECT COUNT(*) AS n FROM task_response WHERE task_id IN (?)`, [removed]), 0);
    assert.equal(await count(`SELECT COUNT(*) AS n FROM task_event WHERE task_id IN (?)`, [removed]), 0);
    assert.equal(await count(`SELECT COUNT(*) AS n FROM request_key WHERE scope IN (?)`, [removed.map((id) => `retry:${id}`)]), 0);
    assert.equal((await h.get('worker/old-done')).status, 404);
    // Kept: the recent one and the unfinished ones, however old, with theirs.
    const kept = [...recent, ...unfinished];
    assert.deepEqual((await ids('%')).sort(), kept.sort());
    assert.equal(await count(`SELECT COUNT(*) AS n FROM task_response WHERE task_id IN (?)`, [kept]), 2 * kept.length);
    assert.equal(await count(`SELECT COUNT(DISTINCT task_id) AS n FROM task_event WHERE task_id IN (?)`, [kept]), kept.length);
    assert.equal(await count(`SELECT COUNT(*) AS n FROM request_key WHERE scope IN (?)`, [kept.map((id) => `retry:${id}`)]), kept.length);
    assert.equal((await h.get('worker/old-sent')).json.task.status, 'SENT');

    // Each task removed by exactly one instance; both took part; no run failed, nothing logged about locks.
    const byInstance = await Promise.all(ports.map(scrape));
    const removedBy = byInstance.map((s) => valueOf(s, 'tasker_job_tasks_total', { job: 'retention' }));
    assert.equal(removedBy[0] + removedBy[1], due, `removed per instance: ${removedBy.join(', ')}`);
    assert.ok(removedBy.every((n) => n > 0), `both instances removed tasks: ${removedBy.join(', ')}`);
    for (const s of byInstance) assert.equal(valueOf(s, 'tasker_job_runs_total', { job: 'retention', result: 'error' }), 0);
    const logged = apis.flatMap((p) => p.lines);
    assert.deepEqual(logged.filter((l) => l.job === 'retention' || Number(l.level) >= 50), []);
    assert.ok(!apis.some((p) => /deadlock|ER_LOCK/i.test(p.raw.join('\n'))));
  });
});

/** The same removal on SQLite (the standalone mode), through the job itself. */
describe('retention of ended tasks (SQLite)', function () {
  let dir: string;
  let ds: DataSource;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-retention-'));
    ds = createDataSource(validateConfig({ mode: 'x', task_types: ['worker'], manager: { db: { uri: `sqlite:${path.join(dir, 'tasker.sqlite')}` } } }).manager.db, dir);
    await ds.initialize();
    await ds.runMigrations();
  });

  after(async function () {
    await ds?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('removes the ended tasks last changed before the cutoff, in batches, and keeps the others', async function () {
    const now = Date.now();
    const day = 86_400_000;
    const tasks: [identifier: string, status: string, ageMs: number][] = [
      ...Array.from({ length: 25 }, (_v, i): [string, string, number] => [`old-${i}`, ['DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED'][i % 4], 3 * day]),
      ['old-sent', 'SENT', 3 * day], ['old-created', 'CREATED', 3 * day], ['recent', 'DONE', day / 2],
    ];
    for (const [identifier, status, age] of tasks) {
      const at = sqlTime(new Date(now - age));
      await ds.query(`INSERT INTO task (identifier, type, status, expected_endpoints, expected_count, request_hash, start_time, last_modified_time)
        VALUES (?, 'worker', ?, '["a","b"]', 2, 'h', ?, ?)`, [identifier, status, at, at]);
      const [{ id }] = await ds.query('SELECT id FROM task WHERE identifier = ?', [identifier]) as { id: number }[];
      for (const ep of ['a', 'b']) await ds.query(`INSERT INTO task_response (task_id, endpoint, last_modified_time) VALUES (?, ?, ?)`, [id, ep, at]);
      await ds.query(`INSERT INTO task_event (task_id, time, kind) VALUES (?, ?, 'created')`, [id, at]);
      await ds.query(`INSERT INTO request_key (scope, idempotency_key, response, created_time) VALUES (?, 'k', '{}', ?)`, [`retry:${id}`, at]);
      await ds.query(`INSERT INTO task_output (task_id, endpoint, "round", attempt, seq, stream, text, time) VALUES (?, 'a', 0, 1, 1, 'stdout', 'x', ?)`, [id, at]);
    }
    const batches: number[] = [];
    const store = new RetentionStore(ds);
    const counting = { removeBatch: async (cutoff: Date, limit: number) => { const n = await store.removeBatch(cutoff, limit); batches.push(n); return n; } };
    const removed = await new RetentionJob(counting as RetentionStore, day, 10, 1).run(new Date(now));
    assert.equal(removed, 25);
    assert.deepEqual(batches, [10, 10, 5]);
    const left = (await ds.query('SELECT identifier FROM task ORDER BY identifier') as { identifier: string }[]).map((r) => r.identifier);
    assert.deepEqual(left, ['old-created', 'old-sent', 'recent']);
    for (const table of ['task_response', 'task_event', 'task_output']) {
      const [{ n }] = await ds.query(`SELECT COUNT(*) AS n FROM ${table} WHERE task_id NOT IN (SELECT id FROM task)`) as { n: number }[];
      assert.equal(n, 0, table);
    }
    const [{ n: outputs }] = await ds.query('SELECT COUNT(*) AS n FROM task_output') as { n: number }[];
    assert.equal(outputs, 3, 'the kept tasks keep their output');
    const [{ n: keys }] = await ds.query('SELECT COUNT(*) AS n FROM request_key') as { n: number }[];
    assert.equal(keys, 3);
    assert.equal(await new RetentionJob(store, day, 10, 1).run(new Date(now)), 0);
  });
});
