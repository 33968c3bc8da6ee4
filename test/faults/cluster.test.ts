import assert from 'node:assert/strict';
import { Harness, Proc, storedTimeMs } from '../support/harness';
import { RabbitCluster, requireOwnRabbit } from '../support/rabbit-cluster';

const ENDPOINTS = ['console1', 'console2', 'console3'];
const QUEUES = ENDPOINTS.map((e) => `tasker.worker.${e}`);
const RESPONSES = 'tasker.responses';
/** POSTs per second of the steady load: modest, so that the machine's two cores are not the bottleneck. */
const RATE = 10;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Posted {
  identifier: string;
  at: number;
  /** HTTP status, or 0 when the request itself failed. */
  status: number;
  /** The task's status in the answer. */
  taskStatus?: string;
}

/**
 * A 3-node RabbitMQ cluster of the test's own (never the shared broker) with quorum queues; the API and
 * three managers get every node in `hosts`. Under a steady POST load, the node leading the queues is
 * killed and restarted, then every node is restarted in turn: every accepted task must end DONE with one
 * finished response per endpoint, and no tasker process may have been restarted.
 */
describe('faults: a RabbitMQ cluster with quorum queues', function () {
  const cluster = new RabbitCluster(3);
  const env: NodeJS.ProcessEnv = {
    TASKER_MANAGER__MESSAGE_QUEUE__QUEUE_TYPE: 'quorum',
    TASKER_MANAGER__ENDPOINTS: `[${ENDPOINTS.join(', ')}]`,
  };
  const h = new Harness({ waitTimeout: 120, env });
  const accepted: { type: string; identifier: string }[] = [];
  let procs: Proc[] = [];
  let pids: number[] = [];
  let serial = 0;

  before(async function () {
    await requireOwnRabbit(this);
    const started = Date.now();
    await cluster.start();
    process.stdout.write(`      3-node cluster started and joined in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    Object.assign(env, cluster.testEnv());
    await h.setup();
    procs = [await h.startApi(), ...await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])))];
    pids = procs.map((p) => p.child.pid ?? -1);
  });

  after(async function () {
    try {
      await h.teardown();
    } finally {
      await cluster.destroy();
    }
  });

  /** POSTs at RATE per second (each request on its own, so that a slow answer does not slow the load) until `stop` resolves. */
  async function load(prefix: string, stop: Promise<unknown>): Promise<Posted[]> {
    const posted: Promise<Posted>[] = [];
    let stopped = false;
    void stop.finally(() => { stopped = true; });
    while (!stopped) {
      const identifier = `${prefix}-${serial++}`;
      const at = Date.now();
      posted.push(h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: ENDPOINTS }).then(
        (res) => ({ identifier, at, status: res.status, taskStatus: res.json?.status as string | undefined }),
        () => ({ identifier, at, status: 0 }),
      ));
      await sleep(1000 / RATE);
    }
    const results = await Promise.all(posted);
    for (const r of results) if (r.status >= 200 && r.status < 300) accepted.push({ type: 'worker', identifier: r.identifier });
    return results;
  }

  /** Every accepted task DONE with one finished response per endpoint; every handler run once; the same processes. */
  async function checkOutcome(posted: Posted[]): Promise<void> {
    const refused = posted.filter((p) => p.status < 200 || p.status >= 300);
    assert.deepEqual(refused, [], 'POSTs not accepted');
    await h.checkInvariants(accepted, QUEUES, 180_000);
    // A copy redelivered after a failover is asked about and skipped, never run a second time.
    for (const [i, m] of procs.slice(1).entries()) {
      const runs = new Map<unknown, number>();
      for (const l of m.lines) if (l.msg === 'running handler') runs.set(l.taskId, (runs.get(l.taskId) ?? 0) + 1);
      const twice = [...runs].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], `${ENDPOINTS[i]} ran a handler more than once`);
    }
    procs.forEach((p, i) => {
      assert.equal(p.child.exitCode, null, `${p.name} exited`);
      assert.equal(p.child.signalCode, null, `${p.name} was killed`);
      assert.equal(p.child.pid, pids[i], `${p.name} was restarted`);
    });
  }

  /** The longest time from a POST to its task's DONE, among `posted`, in seconds. */
  async function slowest(posted: Posted[]): Promise<number> {
    const ids = posted.map((p) => p.identifier);
    const rows = await h.query<{ start_time: string; end_time: string }>(
      `SELECT start_time, end_time FROM task WHERE type = 'worker' AND identifier IN (${ids.map(() => '?').join(', ')})`, ids);
    return Math.max(...rows.map((r) => storedTimeMs(r.end_time) - storedTimeMs(r.start_time))) / 1000;
  }

  it('loses no task and duplicates no response when the node leading the queues is killed under load', async function () {
    const leaders = await cluster.leaders(h.config.manager.message_queue.virtual_host);
    const victim = leaders.get(RESPONSES);
    assert.ok(victim !== undefined && victim >= 0, `no leader for ${RESPONSES}: ${JSON.stringify([...leaders])}`);
    const alsoLeads = QUEUES.filter((q) => leaders.get(q) === victim);
    let killedAt = 0;
    const fault = (async () => {
      await sleep(8_000);
      killedAt = Date.now();
      await cluster.kill(victim);
      await sleep(4_000);
      await cluster.startNode(victim);
      await sleep(8_000);
    })();
    const posted = await load('kill', fault);
    await fault;
    const after = await cluster.leaders(h.config.manager.message_queue.virtual_host);
    assert.notEqual(after.get(RESPONSES), -1);
    await checkOutcome(posted);
    const unsent = posted.filter((p) => p.taskStatus === 'CREATED');
    const lastUnsent = Math.max(killedAt, ...unsent.map((p) => p.at));
    process.stdout.write(`      killed ${cluster.nodes[victim].name} (leader of ${[RESPONSES, ...alsoLeads].join(', ')}); `
      + `${posted.length} tasks, ${unsent.length} answered CREATED, the last ${((lastUnsent - killedAt) / 1000).toFixed(1)} s after the kill; `
      + `slowest POST to DONE ${(await slowest(posted)).toFixed(1)} s; `
      + `connections lost: ${procs.map((p) => p.lines.filter((l) => l.msg === 'connection lost, reconnecting').length).join('/')}\n`);
  });

  it('consumes again, on the same connection, when the broker cancels a consumer (its queue deleted)', async function () {
    const manager = procs[1];
    const lost = (): number => manager.lines.filter((l) => l.msg === 'connection lost, reconnecting').length;
    const lostBefore = lost();
    const consumingBefore = manager.lines.filter((l) => l.msg === 'consuming' && l.queue === QUEUES[0]).length;
    await h.checkInvariants(accepted, QUEUES);
    await cluster.ctl(cluster.anyRunning(), ['delete_queue', '-p', h.config.manager.message_queue.virtual_host, QUEUES[0]]);
    await manager.waitForLog((l) => l.msg === 'consumer cancelled by the broker; consuming again' && l.queue === QUEUES[0], 10_000, 'the cancel');
    const deadline = Date.now() + 10_000;
    while (manager.lines.filter((l) => l.msg === 'consuming' && l.queue === QUEUES[0]).length === consumingBefore) {
      assert.ok(Date.now() < deadline, 'not consuming again within 10 s');
      await sleep(100);
    }
    const posted = await load('after-cancel', sleep(2_000));
    await checkOutcome(posted);
    assert.equal(lost(), lostBefore, 'the connection was dropped');
  });

  it('loses no task and duplicates no response through a rolling restart of all three nodes under load', async function () {
    const started = Date.now();
    const restart = (async () => {
      await sleep(3_000);
      for (let i = 0; i < cluster.size; i++) {
        await cluster.stopNode(i);
        await cluster.startNode(i);
        // The next node goes down only once this one is back in the cluster.
        for (;;) {
          if ((await cluster.runningNodes(i)).length === cluster.size) break;
          await sleep(500);
        }
      }
      await sleep(3_000);
    })();
    const lostBefore = procs.map((p) => p.lines.filter((l) => l.msg === 'connection lost, reconnecting').length);
    const posted = await load('rolling', restart);
    await restart;
    await checkOutcome(posted);
    const lost = procs.map((p, i) => p.lines.filter((l) => l.msg === 'connection lost, reconnecting').length - lostBefore[i]);
    // Every process was on some node, and every node went down once.
    for (const [i, n] of lost.entries()) assert.ok(n >= 1, `${procs[i].name} never failed over`);
    process.stdout.write(`      rolling restart took ${((Date.now() - started) / 1000).toFixed(0)} s; ${posted.length} tasks, `
      + `${posted.filter((p) => p.taskStatus === 'CREATED').length} answered CREATED; slowest POST to DONE ${(await slowest(posted)).toFixed(1)} s; `
      + `connections lost: ${lost.join('/')}\n`);
  });
});
