import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GetMessage } from 'amqplib';
import { Topology } from '../../protocol/topology';
import { Harness, Proc } from '../support/harness';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const EP = 'ep1';
const TOPOLOGY = new Topology('tasker', 'classic');

/**
 * What a manager learns when it (re)connects: every cancel concerning what waits in its queue, however
 * many (the list it is sent is cut at `api.cancelled_listed`, here 5), and what it does while no server
 * side answers at all. RabbitMQ only: in the standalone mode the endpoints live and die with the API.
 */
describe('an endpoint coming back (rabbitmq)', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-runlog-'));
  const runLog = path.join(dir, 'runs.jsonl');
  const h = new Harness({
    waitTimeout: 120,
    env: {
      TASKER_TASK_TYPES: '[worker, backup, runlog]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers', TASKER_TEST_RUN_LOG: runLog,
      TASKER_API__CANCELLED_LISTED: '5', TASKER_MANAGER__HEARTBEAT_INTERVAL: '1', TASKER_MANAGER__STATE_TIMEOUT: '1',
    },
  });
  let api: Proc | null = null;

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    // Known to the server side (registered), then away.
    const first = await h.startManager(EP, ['runlog']);
    await first.stop();
  });

  after(async function () {
    await h.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  const starts = (): { task: number; round: number }[] => (existsSync(runLog) ? readFileSync(runLog, 'utf8') : '').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; task: number; round: number }).filter((m) => m.event === 'start');
  const ran = (): number[] => starts().map((m) => m.task);

  it('skips every task cancelled while it was away, beyond the listed page, and runs the others once', async function () {
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await h.post('runlog', { identifier: `away-${i}`, endpoints: [EP], payload: { sleep: 0 } });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      ids.push(res.json.id as number);
    }
    // 20 cancelled, the oldest among them far beyond the 5 the list carries; 10 left, in between.
    const cancelled = ids.filter((_id, i) => i % 3 !== 2);
    for (let i = 0; i < 30; i++) {
      if (i % 3 !== 2) assert.equal((await h.post(`runlog/away-${i}/cancel`, {})).status, 200);
    }
    assert.equal(cancelled.length, 20);
    // Cancelled, then retried, while away: its queue holds round 0 (superseded) and then round 1.
    const again = await h.post('runlog', { identifier: 'retried-away', endpoints: [EP], payload: { sleep: 0 } });
    assert.equal((await h.post('runlog/retried-away/cancel', {})).status, 200);
    const retried = await h.post('runlog/retried-away/retry', { endpoints: [EP] });
    assert.equal(retried.status, 200, JSON.stringify(retried.json));
    const back = await h.startManager(EP, ['runlog']);
    await back.waitForLog((l) => l.msg === 'the list of cancelled tasks was cut; older deliveries are checked with the server side before they run');
    for (let i = 2; i < 30; i += 3) await h.waitForStatus('runlog', `away-${i}`, ['DONE'], 30_000);
    await h.waitForStatus('runlog', 'retried-away', ['DONE'], 30_000);
    // Every delivery dealt with: the queue is empty.
    for (;;) {
      const depth = await h.withChannel(async (ch) => (await ch.checkQueue(TOPOLOGY.endpointQueueName('runlog', EP))).messageCount);
      if (depth === 0) break;
      await sleep(200);
    }
    await sleep(1000);
    const runs = ran();
    assert.deepEqual(runs.filter((id) => cancelled.includes(id)), [], 'a cancelled task ran');
    assert.deepEqual([...runs].filter((id) => ids.includes(id)).sort((a, b) => a - b), ids.filter((_id, i) => i % 3 === 2));
    // The superseded round never started; the current one ran once.
    assert.deepEqual(starts().filter((m) => m.task === again.json.id).map((m) => m.round), [1]);
    for (let i = 0; i < 30; i += 3) assert.equal((await h.get(`runlog/away-${i}`)).json.task.status, 'CANCELLED');
    await back.stop();
  });

  it('holds its deliveries while no API answers, shows that it waits, and runs them once one is back', async function () {
    const res = await h.post('runlog', { identifier: 'no-api', endpoints: [EP], payload: { sleep: 0 } });
    assert.equal(res.status, 201);
    const id = res.json.id as number;
    assert.equal(await (api as Proc).stop(), 0);
    const manager = await h.startManager(EP, ['runlog']);
    const waitLine = (l: Record<string, unknown>): boolean => l.msg === 'no answer from the server side about cancelled tasks; deliveries wait (nothing runs), asking again';
    const warned = await manager.waitForLog(waitLine, 20_000);
    assert.equal(typeof warned.waitingSince, 'string');
    await sleep(4000);
    assert.ok(!ran().includes(id), 'the task ran with no server side to check it with');
    assert.equal(manager.lines.filter(waitLine).length, 1, 'the wait is logged once');
    // The heartbeats say so too: they wait in the responses queue with `waiting_since`.
    const heartbeats = await h.withChannel(async (ch) => {
      const got: GetMessage[] = [];
      for (let m = await ch.get(TOPOLOGY.eventsQueue.name); m; m = await ch.get(TOPOLOGY.eventsQueue.name)) got.push(m);
      for (const m of got) ch.nack(m, false, true);
      return got.map((m) => JSON.parse(m.content.toString('utf8'))).flatMap((b) => (Array.isArray(b) ? b : b.events ?? [b]));
    });
    assert.ok(heartbeats.some((e: any) => e.kind === 'heartbeat' && e.endpoint === EP && e.waiting_since === warned.waitingSince),
      `no heartbeat with waiting_since among ${JSON.stringify(heartbeats).slice(0, 500)}`);

    api = await h.startApi();
    await manager.waitForLog((l) => l.msg === 'the server side answered; deliveries run again', 30_000);
    await h.waitForStatus('runlog', 'no-api', ['DONE'], 30_000);
    assert.deepEqual(ran().filter((t) => t === id), [id]);
    // Once heard from again, the registry shows it no longer waiting.
    for (let tries = 0; ; tries++) {
      const ep = (await h.get('endpoints')).json.endpoints.find((e: any) => e.name === EP);
      if (ep.waiting_since === null) break;
      assert.ok(tries < 50, `still shown waiting: ${JSON.stringify(ep)}`);
      await sleep(200);
    }
    await manager.stop();
  });
});
