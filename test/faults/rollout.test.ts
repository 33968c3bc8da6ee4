import assert from 'node:assert/strict';
import { Harness, Proc } from '../support/harness';
import { assertSentOnce, HistoryEvent, replayRollout } from '../support/rollout-history';

const name = (i: number): string => `ep${String(i).padStart(2, '0')}`;
const ALL = Array.from({ length: 20 }, (_v, i) => name(i + 1));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A rollout survives the API: its state is in the database, decided under the task's lock, so an API
 * killed with SIGKILL in the middle of it, and started again, goes on where it was, sending to no endpoint
 * twice and losing none.
 */
describe('faults: a rollout across API crashes', function () {
  // A long wait, so that no endpoint goes missing while the API is down.
  const h = new Harness({ waitTimeout: 60, env: { TASKER_TASK_TYPES: '[worker, backup]' } });
  let api: Proc;
  const managers: Proc[] = [];

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    managers.push(await h.startManager(ALL.slice(0, 10), ['worker']), await h.startManager(ALL.slice(10), ['worker']));
  });

  after(async function () {
    await h.teardown();
  });

  async function history(identifier: string): Promise<HistoryEvent[]> {
    const rows = await h.query<{ id: unknown; kind: string; time: unknown; detail: string | null }>(
      'SELECT e.id, e.kind, e.time, e.detail FROM task_event e JOIN task t ON t.id = e.task_id WHERE t.identifier = ? ORDER BY e.id', [identifier]);
    return rows.map((r) => ({ id: Number(r.id), kind: r.kind, time: String(r.time), detail: r.detail === null ? null : JSON.parse(r.detail) }));
  }

  /** How often each endpoint's manager started the handler for the task. */
  function handlerRuns(taskId: number): Map<string, number> {
    const runs = new Map<string, number>();
    for (const l of managers.flatMap((m) => m.lines)) {
      if (l.msg === 'running handler' && l.taskId === taskId) runs.set(String(l.endpoint), (runs.get(String(l.endpoint)) ?? 0) + 1);
    }
    return runs;
  }

  async function untilSent(identifier: string, count: number): Promise<void> {
    for (;;) {
      if (replayRollout(await history(identifier)).sends.size >= count) return;
      await sleep(50);
    }
  }

  it('resumes after SIGKILL (twice) with every endpoint sent the task once and run once', async function () {
    const created = await h.post('worker', { identifier: 'crash-roll', payload: { sleep: 0.5 }, endpoints: ALL, rollout: { batch_size: 3 } });
    assert.equal(created.status, 201);
    for (const at of [7, 14]) {
      await untilSent('crash-roll', at);
      assert.equal(await api.stop('SIGKILL'), null);
      // Endpoints finish meanwhile; their results wait in the responses queue.
      await sleep(1000);
      api = await h.startApi();
    }
    const done = await h.waitForStatus('worker', 'crash-roll', ['DONE', 'INCOMPLETE', 'STOPPED'], 120_000);
    assert.equal(done.task.status, 'DONE');
    assert.equal(done.task.responses.succeeded, 20);
    const events = await history('crash-roll');
    const { sends, maxInFlight } = replayRollout(events);
    assertSentOnce(sends, ALL);
    assert.ok(maxInFlight <= 3, `in flight: ${maxInFlight}`);
    const runs = handlerRuns(created.json.id);
    assert.deepEqual([...runs.keys()].sort(), ALL);
    assert.deepEqual([...runs].filter(([, n]) => n !== 1), [], 'handlers run more than once');
    for (const r of done.taskResponseList) assert.equal(r.attempts, 1, r.endpoint);
    const finished = events.filter((e) => e.kind === 'finished').flatMap((e) => e.detail?.endpoints.map((x: any) => x.endpoint));
    assert.deepEqual([...finished].sort(), ALL, 'one result stored per endpoint');
  });

  it('sends a batch whose publish the crash prevented: the resend job finds its rows never confirmed', async function () {
    const created = await h.post('worker', { identifier: 'unpublished', payload: { sleep: 30 }, endpoints: ALL.slice(0, 4), rollout: { batch_size: 2 } });
    assert.equal(created.status, 201);
    // The first batch confirmed and running: only what follows is in question.
    for (let i = 0; ; i++) {
      const rows = await h.query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM task_response WHERE task_id = ? AND state = 'running' AND sent_time IS NOT NULL`,
        [created.json.id]);
      if (Number(rows[0].n) === 2) break;
      assert.ok(i < 200, 'the first batch never ran');
      await sleep(100);
    }
    assert.equal(await api.stop('SIGKILL'), null);
    // What a collector that committed the next batch and died before publishing it leaves behind: the row
    // pending (decided, with its `sent` event) and never confirmed by the broker.
    const taskId = created.json.id;
    await h.query(`UPDATE task_response SET state = 'pending', sent_time = NULL, last_modified_time = '2000-01-01 00:00:00.000'
      WHERE task_id = ? AND endpoint = ?`, [taskId, name(3)]);
    await h.query(`INSERT INTO task_event (task_id, time, kind, detail) VALUES (?, UTC_TIMESTAMP(3), 'sent', ?)`,
      [taskId, JSON.stringify({ round: 0, targets: 1, endpoints: [name(3)] })]);
    api = await h.startApi();
    const runs = async (): Promise<number> => handlerRuns(taskId).get(name(3)) ?? 0;
    for (let i = 0; (await runs()) === 0; i++) {
      assert.ok(i < 200, 'the decided send was never published');
      await sleep(100);
    }
    const events = await history('unpublished');
    const resent = events.filter((e) => e.kind === 'sent' && e.detail?.resend === 'unsent');
    assert.deepEqual(resent.map((e) => e.detail?.endpoints), [[name(3)]], 'only the unconfirmed send is sent again');
    const cancel = await h.post('worker/unpublished/cancel', {});
    assert.equal(cancel.status, 200);
    await sleep(500);
    assert.deepEqual([...handlerRuns(taskId)].sort(), [[name(1), 1], [name(2), 1], [name(3), 1]]);
  });
});
