import assert from 'node:assert/strict';
import { ERRNR_HANDLER_DIED, ERRNR_HANDLER_TIMEOUT } from '../../protocol/wire';
import { Backend, Harness } from '../support/harness';
import { isAlive, misbehavingPid } from '../support/processes';

const HANDLER_TIMEOUT_S = 3;
const KILL_GRACE_S = 1;
/** What starting processes and reporting may add on this shared, loaded machine (2 cores, other suites). */
const SLACK_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Isolated handler runs (`manager.isolation: process`, the default) end to end: module handlers run in
 * the worker processes of the manager's pool, so that a run that exits, spins or runs out of memory fails
 * alone, while its manager (heartbeats included) and the other runs go on; a timeout and a shutdown end
 * the run's process. Over RabbitMQ (manager processes of their own) and in the standalone process.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`isolated handler runs (${backend})`, function () {
  const h = new Harness({
    backend,
    env: {
      TASKER_TASK_TYPES: '["worker"]', TASKER_MANAGER__ENDPOINTS: '[]',
      TASKER_MANAGER__HANDLER_TIMEOUT: String(HANDLER_TIMEOUT_S), TASKER_MANAGER__KILL_GRACE: String(KILL_GRACE_S),
      TASKER_MANAGER__HANDLER_MAX_HEAP_MB: '64', TASKER_MANAGER__CONCURRENCY: '8', TASKER_MANAGER__HEARTBEAT_INTERVAL: '1',
      TASKER_MANAGER__MESSAGE_QUEUE__PREFETCH: '32',
    },
  });
  const EP = 'iso1';

  before(async function () {
    await h.setup(this);
    await h.startSystem([{ name: EP, task_types: ['worker'] }]);
  });

  after(async function () {
    await h.teardown();
  });

  const pidOf = (identifier: string, ep = EP): Promise<number> => misbehavingPid(h, identifier, ep);

  it('fails only the runs that exit, spin or leak, with their errnr; the 27 others succeed at their first attempt; heartbeats never lapse', async function () {
    const payloads = Array.from({ length: 30 }, (_, i): Record<string, unknown> => ({ sleep: 1 + (i % 3) * 0.25 }));
    payloads[5] = { sleep: 0.3, exit: 3 };
    payloads[12] = { sleep: 0.3, spin: 600 };
    payloads[20] = { sleep: 0.3, leak: true };
    const ids = payloads.map((_, i) => `mix-${i}`);
    const lapses: number[] = [];
    let samples = 0;
    let watching = true;
    // The registry's view while the three misbehave: the manager's heartbeat keeps coming.
    const watch = (async () => {
      while (watching) {
        const res = await h.get('endpoints');
        const me = (res.json.endpoints as { name: string; alive: boolean }[]).find((e) => e.name === EP);
        samples++;
        if (me?.alive !== true) lapses.push(samples);
        await sleep(200);
      }
    })();
    const posted = await Promise.all(payloads.map((payload, i) => h.post('worker', { identifier: ids[i], endpoints: [EP], payload })));
    posted.forEach((res) => assert.equal(res.status, 201, JSON.stringify(res.json)));
    const done = await Promise.all(ids.map((id) => h.waitForStatus('worker', id, ['DONE', 'INCOMPLETE'], 90_000)));
    watching = false;
    await watch;
    const responses = done.map((d) => d.taskResponseList[0]);
    for (const [i, r] of responses.entries()) assert.equal(r.attempts, 1, `${ids[i]}: ${JSON.stringify(r)}`);
    assert.equal(responses[5].errnr, ERRNR_HANDLER_DIED, JSON.stringify(responses[5]));
    assert.equal(responses[5].errmsg, 'the handler\'s process exited with code 3', JSON.stringify(responses[5]));
    assert.equal(responses[12].errnr, ERRNR_HANDLER_TIMEOUT, JSON.stringify(responses[12]));
    assert.equal(responses[12].failure, 'timed_out');
    assert.match(responses[12].errmsg, new RegExp(`timed out after ${HANDLER_TIMEOUT_S} s; its process was killed ${KILL_GRACE_S} s later`));
    assert.equal(responses[20].errnr, ERRNR_HANDLER_DIED, JSON.stringify(responses[20]));
    assert.match(responses[20].errmsg, /ran out of memory \(manager\.handler_max_heap_mb 64\)/);
    const others = responses.filter((_, i) => ![5, 12, 20].includes(i));
    assert.equal(others.length, 27);
    for (const r of others) {
      assert.equal(r.state, 'succeeded', JSON.stringify(r));
      assert.deepEqual(r.payload, { yeah: 1234123, yiya: 'yippie' });
    }
    assert.ok(samples > 5, `only ${samples} looks at the registry`);
    assert.deepEqual(lapses, [], `the endpoint was not alive in looks ${lapses.join(', ')} of ${samples}`);
  });

  it(`kills a spinning handler's process within handler_timeout ${HANDLER_TIMEOUT_S} s + kill_grace`, async function () {
    const identifier = 'spin-1';
    const res = await h.post('worker', { identifier, endpoints: [EP], payload: { sleep: 0.2, spin: 600 } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const pid = await pidOf(identifier);
    // The line is written when the run starts: the timeout is counted from about now.
    const seen = Date.now();
    assert.ok(isAlive(pid), `pid ${pid} runs the handler`);
    for (const limit = (HANDLER_TIMEOUT_S + KILL_GRACE_S) * 1000 + SLACK_MS; isAlive(pid); await sleep(20)) {
      assert.ok(Date.now() - seen < limit, `pid ${pid} still alive ${Date.now() - seen} ms after its run started`);
    }
    const r = (await h.waitForStatus('worker', identifier, ['DONE'], 30_000)).taskResponseList[0];
    assert.equal(r.errnr, ERRNR_HANDLER_TIMEOUT);
    assert.equal(r.attempts, 1);
    // The pool replaced the killed process: the next run works.
    const next = await h.post('worker', { identifier: 'after-spin', endpoints: [EP], payload: { sleep: 0 } });
    assert.equal(next.status, 201);
    assert.equal((await h.waitForStatus('worker', 'after-spin', ['DONE'], 30_000)).taskResponseList[0].errnr, 0);
  });

  it('never lets a retry run beside a hung run: refused while its process lives, which is gone by the time its result is stored', async function () {
    const identifier = 'retry-hung';
    const res = await h.post('worker', { identifier, endpoints: [EP], payload: { sleep: 0.2, spin: 600 } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const first = await pidOf(identifier);
    assert.ok(isAlive(first));
    const early = await h.post(`worker/${identifier}/retry`, { endpoints: [EP] });
    assert.equal(early.status, 409, JSON.stringify(early.json));
    let r: any;
    for (const until = Date.now() + 60_000; (r = (await h.get(`worker/${identifier}`)).json.taskResponseList[0]).state === 'running'; await sleep(20)) {
      assert.ok(Date.now() < until, 'the hung run never reported');
    }
    assert.equal(r.errnr, ERRNR_HANDLER_TIMEOUT);
    assert.ok(!isAlive(first), `pid ${first} still runs the handler whose result is stored`);
    const retried = await h.post(`worker/${identifier}/retry`, { endpoints: [EP] });
    assert.equal(retried.status, 200, JSON.stringify(retried.json));
    for (const until = Date.now() + 60_000; (r = (await h.get(`worker/${identifier}`)).json.taskResponseList[0]).round !== 1 || !['succeeded', 'failed'].includes(r.state); await sleep(50)) {
      assert.ok(Date.now() < until, 'the retry never finished');
    }
    assert.equal(r.errnr, ERRNR_HANDLER_TIMEOUT);
    assert.equal(r.attempts, 1);
  });

  if (backend === 'rabbitmq') it('ends a shutdown within its timeout while a handler spins, and leaves the task to be handed out again', async function () {
    const manager = await h.startManager('iso2', ['worker'], { TASKER_MANAGER__SHUTDOWN_TIMEOUT: '1', TASKER_MANAGER__HANDLER_TIMEOUT: '600' });
    const identifier = 'shutdown-spin';
    const res = await h.post('worker', { identifier, endpoints: ['iso2'], payload: { sleep: 0.2, spin: 600 } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const pid = await pidOf(identifier, 'iso2');
    assert.ok(isAlive(pid));
    const stopping = Date.now();
    assert.equal(await manager.stop(), 0, 'the manager exits cleanly');
    const took = Date.now() - stopping;
    assert.ok(took < 1000 + 2000 + SLACK_MS, `shutdown took ${took} ms`);
    for (const until = Date.now() + 2000; isAlive(pid); await sleep(20)) assert.ok(Date.now() < until, `pid ${pid} outlived its manager`);
    // No result was reported: the response is still running, for the next manager of iso2 to run again.
    const r = (await h.get(`worker/${identifier}`)).json.taskResponseList[0];
    assert.equal(r.state, 'running', JSON.stringify(r));
    assert.equal(manager.lines.filter((l) => /could not process/.test(String(l.msg))).length, 0);
  });
});
