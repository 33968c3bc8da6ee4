import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Backend, Harness } from '../support/harness';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const EP = 'ep1';

interface RunMark { event: 'start' | 'end'; task: number; endpoint: string; round: number }

/**
 * Retries and cancels of one task, many at once: the runs are counted where they happen, by the handler
 * itself (test/handlers/runlog.ts writes each start and end to a file), on both backends.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`retries and cancels serialized per task (${backend})`, function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-runlog-'));
  const runLog = path.join(dir, 'runs.jsonl');
  const h = new Harness({
    backend, waitTimeout: 30, handlerTimeout: 30,
    env: { TASKER_TASK_TYPES: '[worker, backup, runlog]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers', TASKER_TEST_RUN_LOG: runLog },
  });

  before(async function () {
    await h.setup(this);
    if (backend === 'rabbitmq') {
      await h.startApi();
      await h.startManager(EP, ['runlog']);
    } else {
      await h.startAllInOne([{ name: EP, task_types: ['runlog'] }]);
    }
  });

  after(async function () {
    await h.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  const marks = (taskId: number): RunMark[] => (existsSync(runLog) ? readFileSync(runLog, 'utf8') : '')
    .split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunMark).filter((m) => m.task === taskId);

  /** The runs' rounds in the order they started; fails if two runs of the task ever overlapped. */
  function runsOf(taskId: number): number[] {
    let open = 0;
    const rounds: number[] = [];
    for (const m of marks(taskId)) {
      open += m.event === 'start' ? 1 : -1;
      assert.ok(open <= 1, `two runs of task ${taskId} at once: ${JSON.stringify(marks(taskId))}`);
      if (m.event === 'start') rounds.push(m.round);
    }
    return rounds;
  }

  /** Waits until the task ended, its endpoint is not running, every started run ended, and it stays so. */
  async function settle(identifier: string, taskId: number): Promise<any> {
    const deadline = Date.now() + 60_000;
    for (let quiet = 0; quiet < 3;) {
      assert.ok(Date.now() < deadline, `task ${identifier} did not settle: ${JSON.stringify((await h.get(`runlog/${identifier}`)).json)}`);
      const { json } = await h.get(`runlog/${identifier}`);
      const ms = marks(taskId);
      const still = !['DONE', 'CANCELLED'].includes(json.task.status) || ['running', 'pending'].includes(json.taskResponseList[0].state)
        || ms.filter((m) => m.event === 'start').length !== ms.filter((m) => m.event === 'end').length;
      quiet = still ? 0 : quiet + 1;
      await sleep(1000);
    }
    return (await h.get(`runlog/${identifier}`)).json;
  }

  async function created(identifier: string, seconds: number): Promise<number> {
    const res = await h.post('runlog', { identifier, endpoints: [EP], payload: { sleep: seconds } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    await h.waitForStatus('runlog', identifier, ['DONE'], 30_000);
    return res.json.id as number;
  }

  /** Rounds whose result the server side took as its endpoint's current round (history `finished`). */
  async function finishedRounds(identifier: string): Promise<number[]> {
    const { json } = await h.get(`runlog/${identifier}/events`);
    return json.events.filter((e: any) => e.kind === 'finished').flatMap((e: any) => e.detail.endpoints.map((x: any) => x.round as number));
  }

  it('50 concurrent retries start one round each accepted, run exactly once, never two at once', async function () {
    const id = await created('retries', 2);
    const answers = await Promise.all(Array.from({ length: 50 }, () => h.post('runlog/retries/retry', { endpoints: [EP] })));
    const accepted = answers.filter((a) => a.status === 200).length;
    assert.ok(accepted >= 1, 'no retry was accepted');
    for (const a of answers.filter((x) => x.status !== 200)) {
      assert.equal(a.status, 409, JSON.stringify(a.json));
      assert.ok(['endpoint_pending', 'endpoint_running'].includes(a.json.error.code), JSON.stringify(a.json));
    }
    const end = await settle('retries', id);
    assert.equal(end.task.status, 'DONE');
    assert.equal(end.taskResponseList[0].round, accepted);
    // Round 0, then exactly one run per accepted retry, in order.
    assert.deepEqual(runsOf(id), Array.from({ length: accepted + 1 }, (_v, i) => i));
    const { json } = await h.get('runlog/retries/events');
    assert.equal(json.events.filter((e: any) => e.kind === 'retried').length, accepted);
  });

  it('50 concurrent retries and cancels: never two runs at once, no round run twice, no superseded round started', async function () {
    const id = await created('mixed', 1);
    const answers = await Promise.all(Array.from({ length: 50 }, (_v, i) => h.post(`runlog/mixed/${i % 2 === 0 ? 'retry' : 'cancel'}`, i % 2 === 0 ? { endpoints: [EP] } : {})));
    for (const a of answers.filter((x) => x.status !== 200)) {
      assert.equal(a.status, 409, JSON.stringify(a.json));
      assert.ok(['endpoint_pending', 'endpoint_running', 'task_ended'].includes(a.json.error.code), JSON.stringify(a.json));
    }
    const retries = answers.filter((a, i) => i % 2 === 0 && a.status === 200).length;
    const end = await settle('mixed', id);
    const runs = runsOf(id);
    assert.equal(end.taskResponseList[0].round, retries);
    // Each round at most once (a round cancelled before it was asked about never runs), in order.
    assert.deepEqual(runs, [...new Set(runs)].sort((a, b) => a - b));
    assert.ok(runs.every((r) => r <= retries));
    // Every run was of its endpoint's current round when it started: the server side took each result as
    // current (the result of a superseded round would be a stale duplicate, not recorded as finished).
    assert.deepEqual((await finishedRounds('mixed')).sort((a, b) => a - b), runs);
    if (end.task.status === 'DONE') assert.equal(runs[runs.length - 1], retries);
  });

  it('50 concurrent retries with one Idempotency-Key all get the first answer, and one round runs', async function () {
    const id = await created('keyed', 1);
    const answers = await Promise.all(Array.from({ length: 50 }, () => h.post('runlog/keyed/retry', { endpoints: [EP] }, { 'idempotency-key': 'one-key' })));
    for (const a of answers) {
      assert.equal(a.status, 200, JSON.stringify(a.json));
      assert.deepEqual(a.json.retried, [EP]);
    }
    const end = await settle('keyed', id);
    assert.equal(end.taskResponseList[0].round, 1);
    assert.deepEqual(runsOf(id), [0, 1]);
  });
});
