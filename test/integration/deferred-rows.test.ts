import assert from 'node:assert/strict';
import { Harness } from '../support/harness';

type Row = { endpoint: string; state: string; attempts: number };
const ENDPOINTS = ['dr1', 'dr2', 'dr3'];

/**
 * A task expecting at least `api.background_send_from` endpoints is stored with its task row only; its
 * response rows follow before its first send. Whatever reaches such a task first writes them: a GET, a
 * cancel, the resend job (for a task whose API stopped before its rows were written), a read of an
 * endpoint's tasks. The tasks left that way are made as a stopped API leaves them: the task row, with
 * `rows_pending`, and no response row.
 */
describe('response rows written after a large task is stored (rabbitmq)', function () {
  const h = new Harness({ env: { TASKER_API__BACKGROUND_SEND_FROM: '2' } });

  before(async function () {
    await h.setup(this);
    await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker'] })));
  });

  after(async function () {
    await h.teardown();
  });

  const rowCount = async (identifier: string): Promise<number> => Number((await h.query<{ n: unknown }>(
    `SELECT COUNT(*) AS n FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.type = 'worker' AND t.identifier = ?`, [identifier]))[0].n);

  /**
   * A task as an API leaves it that stopped right after committing it: no response row yet. `held`: its
   * last change dated an hour ahead, so that the resend job leaves it alone until `release`.
   */
  const leaveRowless = async (identifier: string, held: boolean): Promise<void> => {
    await h.query(`INSERT INTO task (identifier, type, status, payload, endpoints, expected_endpoints, expected_count, request_hash,
      start_time, last_modified_time, timeout, deadline, rows_pending)
      VALUES (?, 'worker', 'CREATED', '{"sleep":0}', ?, ?, 3, 'h', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL ? HOUR, 60, UTC_TIMESTAMP(3) + INTERVAL 2 HOUR, 1)`,
    [identifier, JSON.stringify(ENDPOINTS), JSON.stringify(ENDPOINTS), held ? 1 : 0]);
    assert.equal(await rowCount(identifier), 0);
  };
  const release = (identifier: string): Promise<unknown> =>
    h.query(`UPDATE task SET last_modified_time = UTC_TIMESTAMP(3) - INTERVAL 1 MINUTE WHERE type = 'worker' AND identifier = ?`, [identifier]);
  const succeeded = ENDPOINTS.map((e) => [e, 'succeeded', 1]);

  it('stores, sends and completes large tasks posted at once, with one row per endpoint and nothing left pending', async function () {
    const posts = await Promise.all(Array.from({ length: 20 }, (_x, i) =>
      h.post('worker', { identifier: `many-${i}`, payload: { sleep: 0 }, endpoints: ENDPOINTS })));
    for (const p of posts) {
      assert.equal(p.status, 201, JSON.stringify(p.json));
      assert.deepEqual([p.json.status, p.json.responses.pending], ['CREATED', 3]);
    }
    for (let i = 0; i < 20; i++) {
      const done = await h.waitForStatus('worker', `many-${i}`, ['DONE']);
      assert.deepEqual(done.taskResponseList.map((r: Row) => [r.endpoint, r.state, r.attempts]), ENDPOINTS.map((e) => [e, 'succeeded', 1]));
    }
    const left = await h.query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM task WHERE rows_pending <> 0`);
    assert.equal(Number(left[0].n), 0);
  });

  it('shows every expected endpoint pending in one GET of a task whose rows are not written yet, then sends it', async function () {
    await leaveRowless('shown', true);
    const got = await h.get('worker/shown');
    assert.equal(got.status, 200, JSON.stringify(got.json));
    assert.equal(got.json.task.responses.pending, 3, JSON.stringify(got.json.task));
    assert.deepEqual(got.json.taskResponseList.map((r: Row) => [r.endpoint, r.state]), ENDPOINTS.map((e) => [e, 'pending']));
    assert.equal(await rowCount('shown'), 3);
    await release('shown');
    const done = await h.waitForStatus('worker', 'shown', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: Row) => [r.endpoint, r.state, r.attempts]), succeeded);
  });

  it('sends a task whose API stopped before its rows were written: the resend job writes them, then sends', async function () {
    await leaveRowless('orphan', false);
    const done = await h.waitForStatus('worker', 'orphan', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: Row) => [r.endpoint, r.state, r.attempts]), succeeded);
    assert.equal(await rowCount('orphan'), 3);
  });

  it('cancels a task whose rows are not written yet: every endpoint is cancelled', async function () {
    await leaveRowless('stopped', true);
    const cancelled = await h.post('worker/stopped/cancel', {});
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));
    const got = await h.get('worker/stopped');
    assert.equal(got.json.task.status, 'CANCELLED');
    assert.deepEqual(got.json.taskResponseList.map((r: Row) => [r.endpoint, r.state]), ENDPOINTS.map((e) => [e, 'cancelled']));
    assert.equal(await rowCount('stopped'), 3);
  });

  it('lists a task whose rows are not written yet among an endpoint\'s pending tasks, and its counts in the task list', async function () {
    await leaveRowless('listed', true);
    const got = await h.get('endpoints/dr2/responses?state=pending');
    assert.equal(got.status, 200, JSON.stringify(got.json));
    assert.deepEqual((got.json.responses as { identifier: string; state: string }[]).map((r) => [r.identifier, r.state]), [['listed', 'pending']]);
    await leaveRowless('counted', true);
    const list = await h.get('worker?limit=1');
    assert.equal(list.status, 200, JSON.stringify(list.json));
    assert.deepEqual([list.json.tasks[0].identifier, list.json.tasks[0].responses.pending], ['counted', 3]);
    await Promise.all([release('listed'), release('counted')]);
    for (const identifier of ['listed', 'counted']) await h.waitForStatus('worker', identifier, ['DONE']);
  });
});
