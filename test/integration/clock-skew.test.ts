import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ensureDebianPackage } from '../support/debian';
import { freePort, Harness, Proc, storedTimeMs } from '../support/harness';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** The API host's clock, ten minutes ahead; timers (the monotonic clock) left alone, so that the process runs normally. */
const SKEWED = { LD_PRELOAD: LIBFAKETIME, FAKETIME: '+10m', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
const SWEEP_S = 1;
const WAIT_S = 4;
const RUN_SLACK_MS = 1500;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Deadlines are judged by the database's clock: an API process whose host clock is ten minutes ahead
 * (libfaketime) decides them exactly as an unskewed one. Tasks are created through an unskewed API, which
 * then stops, and through the skewed one; only the skewed one sweeps. Before, it would have taken every
 * send for ten minutes old and ended the tasks at once.
 */
describe('deadlines with an API host whose clock is skewed (rabbitmq)', function () {
  const h = new Harness({ waitTimeout: WAIT_S, handlerTimeout: 300, env: { TASKER_API__SWEEP_INTERVAL: String(SWEEP_S) } });
  let skewedPort = 0;
  let plainApi: Proc;

  before(async function () {
    this.timeout(900_000);
    await ensureDebianPackage('faketime', ['test', ['-e', LIBFAKETIME]]);
    assert.ok(existsSync(LIBFAKETIME));
    await h.setup(this);
    plainApi = await h.startApi();
    skewedPort = await freePort();
    const skewed = await h.startApi(skewedPort, SKEWED);
    // The skewed process does see a clock ten minutes ahead.
    const logged = skewed.lines.find((l) => typeof l.time === 'string');
    assert.ok(logged && Date.parse(logged.time as string) - Date.now() > 9 * 60_000, `not skewed: ${JSON.stringify(logged)}`);
    await h.startManager('sk1', ['worker']);
  });

  after(async function () {
    await h.teardown();
  });

  const getFrom = async (port: number, path: string): Promise<any> => (await fetch(`http://127.0.0.1:${port}/${path}`)).json();
  const taskRow = async (identifier: string) => (await h.query<{ sent_time: string; start_time: string; end_time: string | null; deadline: string; status: string }>(
    'SELECT status, start_time, sent_time, end_time, deadline FROM task WHERE identifier = ?', [identifier]))[0];

  async function waitForStatus(identifier: string, status: string, timeoutMs = 30_000): Promise<any> {
    for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(100)) {
      const got = await getFrom(skewedPort, `worker/${identifier}`);
      if (got.task?.status === status) return got;
    }
    throw new Error(`${identifier} not ${status} within ${timeoutMs} ms`);
  }

  it('ends tasks at their deadlines and wait_for_endpoints_timeout, not earlier and not later', async function () {
    // Through the unskewed API: one that runs past its timeout, one that no endpoint ever receives.
    const running = await h.post('worker', { identifier: 'plain-running', payload: { sleep: 120 }, endpoints: ['sk1'], timeout: 5 });
    const unheard = await h.post('worker', { identifier: 'plain-unheard', payload: { sleep: 0 }, endpoints: ['nobody'], timeout: 600 });
    assert.deepEqual([running.status, unheard.status], [201, 201]);
    // Now only the skewed API is left to judge them.
    assert.equal(await plainApi.stop(), 0);
    // Through the skewed API: its times are the database's, not its host's.
    const skewed = await h.post('worker', { identifier: 'skewed-running', payload: { sleep: 120 }, endpoints: ['sk1'], timeout: 5 }, {}, skewedPort);
    assert.equal(skewed.status, 201, JSON.stringify(skewed.json));
    const created = await taskRow('skewed-running');
    assert.ok(Math.abs(storedTimeMs(created.start_time) - Date.now()) < 5000, `created at ${created.start_time}, not the database's time`);
    assert.ok(Math.abs(Date.parse(skewed.json.start_time) - Date.now()) < 5000);

    await sleep(2500);
    for (const id of ['plain-running', 'plain-unheard', 'skewed-running']) assert.equal((await taskRow(id)).status, 'SENT', `${id} ended early`);

    for (const id of ['plain-running', 'skewed-running']) {
      const ended = await waitForStatus(id, 'INCOMPLETE');
      const row = await taskRow(id);
      assert.equal(storedTimeMs(row.deadline) - storedTimeMs(row.sent_time), 5000);
      const late = storedTimeMs(row.end_time as string) - storedTimeMs(row.deadline);
      assert.ok(late >= 0 && late <= SWEEP_S * 1000 + RUN_SLACK_MS, `${id} ended ${late} ms after its deadline`);
      assert.equal(ended.taskResponseList[0].failure, 'timed_out');
    }

    await waitForStatus('plain-unheard', 'INCOMPLETE');
    const row = await taskRow('plain-unheard');
    const events = (await getFrom(skewedPort, 'worker/plain-unheard/events')).events;
    const incomplete = events.find((e: any) => e.kind === 'incomplete');
    const after = Date.parse(incomplete.time) - storedTimeMs(row.sent_time);
    assert.ok(after >= WAIT_S * 1000 && after <= WAIT_S * 1000 + SWEEP_S * 1000 + RUN_SLACK_MS,
      `INCOMPLETE ${after} ms after the send (wait_for_endpoints_timeout ${WAIT_S} s)`);
  });

  it('judges an endpoint alive by its heartbeats on the database clock', async function () {
    const listed = (await getFrom(skewedPort, 'endpoints')).endpoints.find((e: any) => e.name === 'sk1');
    assert.ok(Math.abs(Date.parse(listed.last_heartbeat) - Date.now()) < 5000, `heartbeat stamped ${listed.last_heartbeat}`);
    assert.equal(listed.alive, true);
  });
});
