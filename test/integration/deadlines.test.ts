import assert from 'node:assert/strict';
import { Topology } from '../../protocol/topology';
import { ERRNR_DEADLINE_PASSED } from '../../protocol/wire';
import { Backend, Harness, Proc, storedTimeMs } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');
/** The sweeps' interval in these suites (seconds): a deadline is judged within it. */
const SWEEP_S = 1;
/** What a sweep run (and the timer before it) may take beyond the interval on this shared, loaded machine (2 cores, several suites at once): up to ~1 s was seen. */
const RUN_SLACK_MS = 1500;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface TaskRow {
  id: number;
  status: string;
  sent_time: string | null;
  end_time: string | null;
  deadline: string | null;
  timeout: number;
}

/**
 * Execution deadlines (`timeout`): a task whose run outlasts it ends INCOMPLETE, its pending endpoints
 * `missing` and its running ones `failed` (`timed_out`, errnr 127, told to abort), on both backends.
 * `wait_for_endpoints_timeout` is long here, so that only the deadline ends anything.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`execution deadlines (${backend})`, function () {
  const h = new Harness({ backend, waitTimeout: 300, handlerTimeout: 300, env: { TASKER_API__SWEEP_INTERVAL: String(SWEEP_S) } });
  const procs: Proc[] = [];
  const LIVE = ['live1', 'live2'];

  before(async function () {
    await h.setup(this);
    if (backend === 'rabbitmq') {
      procs.push(await h.startApi());
      procs.push(await h.startManager(LIVE, ['worker']));
    } else {
      procs.push(await h.startAllInOne(LIVE.map((name) => ({ name, task_types: ['worker'] }))));
    }
  });

  after(async function () {
    await h.teardown();
  });

  const taskRow = async (identifier: string): Promise<TaskRow> =>
    (await h.query<TaskRow>('SELECT id, status, sent_time, end_time, deadline, timeout FROM task WHERE identifier = ?', [identifier]))[0];
  const rowsOf = (identifier: string) => h.query<{ endpoint: string; state: string; status: number | null; errnr: number; errmsg: string | null }>(
    'SELECT r.endpoint, r.state, r.status, r.errnr, r.errmsg FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = ? ORDER BY r.endpoint', [identifier]);

  /** Ended on time: not before its deadline, and within a sweep interval after it (the database's times). */
  function assertEndedOnTime(row: TaskRow, timeoutS: number): void {
    assert.ok(row.sent_time && row.deadline && row.end_time, JSON.stringify(row));
    assert.equal(storedTimeMs(row.deadline) - storedTimeMs(row.sent_time), timeoutS * 1000, 'the deadline is the send plus the timeout');
    const late = storedTimeMs(row.end_time) - storedTimeMs(row.deadline);
    assert.ok(late >= 0, `ended ${-late} ms before its deadline`);
    assert.ok(late <= SWEEP_S * 1000 + RUN_SLACK_MS, `ended ${late} ms after its deadline (sweep interval ${SWEEP_S} s)`);
  }

  async function waitForRunning(identifier: string, endpoint: string): Promise<void> {
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(100)) {
      if ((await rowsOf(identifier)).some((r) => r.endpoint === endpoint && r.state === 'running')) return;
    }
    throw new Error(`${endpoint} never ran ${identifier}`);
  }

  it('refuses a timeout that is not a whole number of seconds from 1 to 30 days (400), and stores nothing', async function () {
    for (const [i, timeout] of [0, -1, 2_592_001, 1.5, '5', null, true].entries()) {
      const res = await h.post('worker', { identifier: `bad-timeout-${i}`, endpoints: LIVE, timeout });
      assert.equal(res.status, 400, `${JSON.stringify(timeout)}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error.code, 'invalid_request');
      assert.match(res.json.error.message, /timeout/);
    }
    const stored = await h.query<{ n: number }>(`SELECT COUNT(*) AS n FROM task WHERE identifier LIKE 'bad-timeout-%'`);
    assert.equal(Number(stored[0].n), 0);
    // The bounds themselves are taken, and shown; without one, the configured default (an hour).
    const most = await h.post('worker', { identifier: 'most-timeout', endpoints: LIVE, payload: { sleep: 0 }, timeout: 2_592_000 });
    assert.equal(most.status, 201, JSON.stringify(most.json));
    assert.equal(most.json.timeout, 2_592_000);
    const plain = await h.post('worker', { identifier: 'default-timeout', endpoints: LIVE, payload: { sleep: 0 } });
    assert.equal(plain.json.timeout, 3600);
    const done = await h.waitForStatus('worker', 'default-timeout', ['DONE']);
    assert.equal(Date.parse(done.task.deadline) - Date.parse(done.task.sent_time), 3600 * 1000);
  });

  it('makes the endpoints still pending at the deadline missing, and the task INCOMPLETE, not before', async function () {
    const posted = await h.post('worker', { identifier: 'pending-at-deadline', payload: { sleep: 0 }, endpoints: ['live1', 'ghost'], timeout: 3 });
    assert.equal(posted.status, 201, JSON.stringify(posted.json));
    await sleep(1500);
    assert.equal((await taskRow('pending-at-deadline')).status, 'SENT', 'not ended before its deadline');
    const ended = await h.waitForStatus('worker', 'pending-at-deadline', ['INCOMPLETE'], 20_000);
    assertEndedOnTime(await taskRow('pending-at-deadline'), 3);
    assert.deepEqual((await rowsOf('pending-at-deadline')).map((r) => [r.endpoint, r.state]), [['ghost', 'missing'], ['live1', 'succeeded']]);
    assert.equal(ended.task.responses.missing, 1);
    const events = (await h.get('worker/pending-at-deadline/events')).json.events;
    const incomplete = events.find((e: any) => e.kind === 'incomplete');
    assert.deepEqual([incomplete.detail.reason, incomplete.detail.missing, incomplete.detail.timed_out], ['deadline', 1, 0]);
    assert.deepEqual(events.find((e: any) => e.kind === 'missing').detail.endpoints.map((x: any) => x.endpoint), ['ghost']);
  });

  it('fails a running endpoint (timed_out, errnr 127) and tells it to abort; the aborted run\'s report changes nothing', async function () {
    const posted = await h.post('worker', { identifier: 'running-at-deadline', payload: { sleep: 120 }, endpoints: ['live2'], timeout: 3 });
    assert.equal(posted.status, 201);
    await waitForRunning('running-at-deadline', 'live2');
    const ended = await h.waitForStatus('worker', 'running-at-deadline', ['INCOMPLETE'], 20_000);
    assertEndedOnTime(await taskRow('running-at-deadline'), 3);
    const [response] = ended.taskResponseList;
    assert.deepEqual([response.state, response.failure, response.errnr, response.errmsg], ['failed', 'timed_out', ERRNR_DEADLINE_PASSED, 'timed_out']);
    // The handler (120 s of sleep) was aborted, as by a cancel, and reported at once.
    const proc = procs[procs.length - 1];
    await proc.waitForLog((l) => l.msg === 'task finished' && l.cancelled === true && l.taskId === ended.task.id, 10_000, 'the aborted run');
    await sleep(1000);
    const after = await h.get('worker/running-at-deadline');
    assert.equal(after.json.task.status, 'INCOMPLETE', 'the aborted run\'s report does not end the task otherwise');
    assert.equal(after.json.taskResponseList[0].failure, 'timed_out');
    const kinds = (await h.get('worker/running-at-deadline/events')).json.events.map((e: any) => e.kind);
    assert.ok(kinds.includes('timed_out') && kinds.includes('incomplete'), kinds.join(','));
  });

  it('frees a rollout\'s slots at the deadline: the endpoint holding one fails, the queued ones are skipped', async function () {
    const posted = await h.post('worker', {
      identifier: 'rollout-at-deadline', payload: { sleep: 120 }, endpoints: ['live1', 'live2'], rollout: { batch_size: 1 }, timeout: 3,
    });
    assert.equal(posted.status, 201, JSON.stringify(posted.json));
    await waitForRunning('rollout-at-deadline', 'live1');
    const ended = await h.waitForStatus('worker', 'rollout-at-deadline', ['INCOMPLETE'], 20_000);
    assertEndedOnTime(await taskRow('rollout-at-deadline'), 3);
    assert.deepEqual((await rowsOf('rollout-at-deadline')).map((r) => [r.endpoint, r.state, r.errnr]), [['live1', 'failed', ERRNR_DEADLINE_PASSED], ['live2', 'skipped', 0]]);
    assert.equal(ended.task.rollout.running, 0, 'no slot held');
    assert.equal(ended.task.responses.skipped, 1);
  });
});

/**
 * The leak the deadline closes: an endpoint that sent its receipt and then died for good (its manager
 * SIGKILLed, never restarted) left the task SENT for ever, as the INCOMPLETE sweep waits for receipts only.
 * A result that arrives after the deadline is still stored and can make the task DONE.
 */
describe('execution deadlines: an endpoint gone for good after its receipt (rabbitmq)', function () {
  const WAIT_S = 2;
  const h = new Harness({ waitTimeout: WAIT_S, handlerTimeout: 300, env: { TASKER_API__SWEEP_INTERVAL: String(SWEEP_S) } });

  before(async function () {
    await h.setup(this);
    await h.startApi();
  });

  after(async function () {
    await h.teardown();
  });

  it('ends the task INCOMPLETE, the endpoint failed/timed_out, within the sweep interval after the deadline', async function () {
    const manager = await h.startManager('doomed', ['worker']);
    const posted = await h.post('worker', { identifier: 'killed-after-receipt', payload: { sleep: 120 }, endpoints: ['doomed'], timeout: 5 });
    assert.equal(posted.status, 201, JSON.stringify(posted.json));
    assert.equal(posted.json.timeout, 5);
    for (let i = 0; ; i++) {
      const rows = await h.query<{ status: number | null }>(
        `SELECT r.status FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = 'killed-after-receipt'`);
      if (rows[0]?.status === 0) break;
      assert.ok(i < 200, 'no receipt');
      await sleep(100);
    }
    assert.equal(await manager.stop('SIGKILL'), null);
    const ended = await h.waitForStatus('worker', 'killed-after-receipt', ['INCOMPLETE'], 30_000);
    const [row] = await h.query<TaskRow>(`SELECT id, status, sent_time, end_time, deadline, timeout FROM task WHERE identifier = 'killed-after-receipt'`);
    assert.equal(storedTimeMs(row.deadline) - storedTimeMs(row.sent_time), 5000);
    const late = storedTimeMs(row.end_time) - storedTimeMs(row.deadline);
    assert.ok(late >= 0 && late <= SWEEP_S * 1000 + RUN_SLACK_MS, `ended ${late} ms after the deadline`);
    assert.equal(ended.task.deadline, new Date(storedTimeMs(row.deadline)).toISOString());
    const [response] = ended.taskResponseList;
    assert.deepEqual([response.endpoint, response.state, response.failure, response.errnr], ['doomed', 'failed', 'timed_out', ERRNR_DEADLINE_PASSED]);
    assert.deepEqual([ended.task.responses.failed, ended.task.responses.running, ended.task.responses.finished], [1, 0, 0]);
  });

  it('ends a task INCOMPLETE for want of a receipt once more at its deadline, its running endpoint timed out, and once only', async function () {
    const manager = await h.startManager('slow', ['worker']);
    const posted = await h.post('worker', { identifier: 'unheard-and-running', payload: { sleep: 120 }, endpoints: ['slow', 'absent'], timeout: 5 });
    assert.equal(posted.status, 201);
    const early = await h.waitForStatus('worker', 'unheard-and-running', ['INCOMPLETE'], 20_000);
    assert.equal(early.task.end_time, null, 'INCOMPLETE for want of a receipt: not ended yet');
    assert.equal(early.taskResponseList.find((r: any) => r.endpoint === 'slow').state, 'running');
    for (let i = 0; ; i++) {
      const got = (await h.get('worker/unheard-and-running')).json;
      if (got.task.end_time !== null) break;
      assert.ok(i < 200, 'the deadline never ended it');
      await sleep(100);
    }
    const [row] = await h.query<TaskRow>(`SELECT id, status, sent_time, end_time, deadline, timeout FROM task WHERE identifier = 'unheard-and-running'`);
    const late = storedTimeMs(row.end_time) - storedTimeMs(row.deadline);
    assert.ok(late >= 0 && late <= SWEEP_S * 1000 + RUN_SLACK_MS, `ended ${late} ms after the deadline`);
    const rows = await h.query<{ endpoint: string; state: string; errnr: number }>(
      'SELECT endpoint, state, errnr FROM task_response WHERE task_id = ? ORDER BY endpoint', [row.id]);
    assert.deepEqual(rows.map((r) => [r.endpoint, r.state, r.errnr]), [['absent', 'missing', 0], ['slow', 'failed', ERRNR_DEADLINE_PASSED]]);
    // Ended once: later sweeps find nothing more to do with it.
    await sleep(3 * SWEEP_S * 1000);
    const kinds = (await h.get('worker/unheard-and-running/events')).json.events.map((e: any) => e.kind);
    assert.deepEqual(kinds.filter((k: string) => ['incomplete', 'timed_out'].includes(k)), ['incomplete', 'timed_out', 'incomplete']);
    await manager.stop();
  });

  it('stores a result that arrives after the deadline, which makes the task DONE', async function () {
    const manager = await h.startManager('straggler', ['worker']);
    const posted = await h.post('worker', { identifier: 'late-result', payload: { sleep: 120 }, endpoints: ['straggler'], timeout: 2 });
    assert.equal(posted.status, 201);
    for (let i = 0; ; i++) {
      const rows = await h.query<{ status: number | null }>(
        `SELECT r.status FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = 'late-result'`);
      if (rows[0]?.status === 0) break;
      assert.ok(i < 200, 'no receipt');
      await sleep(100);
    }
    // Gone before the deadline's abort could reach it; its result comes later (as from a manager whose
    // control message was lost), not aborted.
    assert.equal(await manager.stop('SIGKILL'), null);
    const incomplete = await h.waitForStatus('worker', 'late-result', ['INCOMPLETE'], 20_000);
    assert.equal(incomplete.taskResponseList[0].failure, 'timed_out');
    const now = new Date().toISOString();
    const result = { kind: 'result', task_id: posted.json.id, endpoint: 'straggler', attempt: 1, round: 0, start_time: now, end_time: now, errnr: 0, errmsg: null, payload: { late: true } };
    await h.withChannel(async (ch) => {
      ch.sendToQueue(TOPOLOGY.eventsQueue.name, Buffer.from(JSON.stringify(result)), { contentType: 'application/json', persistent: true });
    });
    const done = await h.waitForStatus('worker', 'late-result', ['DONE'], 20_000);
    assert.deepEqual([done.taskResponseList[0].state, done.taskResponseList[0].payload], ['succeeded', { late: true }]);
    assert.deepEqual([done.task.responses.finished, done.task.responses.failed], [1, 0]);
  });
});
