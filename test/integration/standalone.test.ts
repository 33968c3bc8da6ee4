import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, Harness, Proc } from '../support/harness';
import { parseMetrics, valueOf } from '../support/prometheus';

const SEED = { identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66', payload: { foo: 'bar' }, endpoints: ['console1', 'console2'] };
const CONSOLES = [{ name: 'console1', task_types: ['worker', 'backup'] }, { name: 'console2', task_types: ['worker', 'backup'] }];

/** Remote ports of the TCP connections a process holds, from `ss -tnp`. */
function remotePorts(pid: number): number[] {
  const out = execFileSync('ss', ['-tnpH'], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes(`pid=${pid},`)).map((line) => Number(line.trim().split(/\s+/)[4].split(':').pop()));
}

/** `npm start` with nothing but Node.js: SQLite and in-process queues in one process. */
describe('standalone mode (npm start)', function () {
  const h = new Harness({ backend: 'standalone' });
  let proc: Proc;

  before(async function () {
    await h.setup(this);
  });

  after(async function () {
    await h.teardown();
  });

  it('defaults to standalone, says where it listens, and completes the seed scenario without RabbitMQ or MySQL', async function () {
    proc = await h.startAllInOne(CONSOLES, false);
    assert.ok(proc.raw.some((l) => l.startsWith(`tasker (standalone mode) listening on http://127.0.0.1:${h.port}`)), proc.raw.join('\n'));
    assert.ok(proc.raw.some((l) => l.includes('endpoint managers: console1 (worker, backup); console2 (worker, backup)')));

    const created = await h.post('worker', SEED);
    assert.equal(created.status, 201);
    assert.equal(created.json.status, 'SENT');
    const done = await h.waitForStatus('worker', SEED.identifier, ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => [r.endpoint, r.status, r.errnr, r.payload]).sort(), [
      ['console1', 1, 0, { yeah: 1234123, yiya: 'yippie' }],
      ['console2', 1, 0, { yeah: 1234123, yiya: 'yippie' }],
    ]);
    const ports = remotePorts(proc.child.pid!);
    assert.ok(!ports.includes(5672) && !ports.includes(3306), `connections to ${ports.join(', ')}`);
    // pino writes a key bound twice twice: each part's lines name one component.
    const twice = proc.raw.filter((l) => (l.match(/"component":/g) ?? []).length > 1);
    assert.deepEqual(twice, []);
    assert.ok(proc.raw.some((l) => l.includes('"component":"collector"')), 'no line of the collector');
  });

  it('answers /healthz, /readyz and /metrics in the standalone process too', async function () {
    assert.deepEqual(await h.get('healthz'), { status: 200, json: { status: 'ok' } });
    assert.deepEqual(await h.get('readyz'), { status: 200, json: { status: 'ready', checks: { database: 'up', migrations: 'current', broker: 'up' } } });
    const res = await fetch(`${h.baseUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const samples = parseMetrics(await res.text());
    // The seed task of the first test, done by both consoles.
    assert.equal(valueOf(samples, 'tasker_tasks_created_total', { type: 'worker' }), 1);
    assert.equal(valueOf(samples, 'tasker_tasks_done_total', { type: 'worker' }), 1);
    assert.equal(valueOf(samples, 'tasker_responses_total', { type: 'worker', endpoint: 'console1', outcome: 'succeeded' }), 1);
    assert.equal(valueOf(samples, 'tasker_responses_total', { type: 'worker', endpoint: 'console2', outcome: 'succeeded' }), 1);
    assert.equal(valueOf(samples, 'tasker_task_duration_seconds_count', { type: 'worker' }), 1);
    assert.equal(valueOf(samples, 'tasker_broker_connected'), 1);
    assert.equal(valueOf(samples, 'tasker_database_up'), 1);
  });

  it('delivers again after a crash what an endpoint had not finished, and finishes it once', async function () {
    await h.post('worker', { identifier: 'crash', payload: { sleep: 1.5 }, endpoints: ['console1', 'console2'] });
    for (const endpoint of ['console1', 'console2']) {
      await proc.waitForLog((l) => l.msg === 'running handler' && l.identifier === 'crash' && l.endpoint === endpoint);
    }
    assert.equal(await proc.stop('SIGKILL'), null);
    const before = await h.query(`SELECT status, finished_count FROM task WHERE identifier = 'crash'`);
    // Killed within milliseconds of the POST: the send may not have been recorded yet (SENT follows
    // the broker's confirm in the background; a task left CREATED is sent again).
    assert.equal(before.length, 1);
    assert.ok(['CREATED', 'SENT'].includes(String(before[0].status)));
    assert.equal(Number(before[0].finished_count), 0);

    proc = await h.startAllInOne(CONSOLES, false);
    const done = await h.waitForStatus('worker', 'crash', ['DONE']);
    assert.equal(done.taskResponseList.length, 2);
    for (const r of done.taskResponseList) {
      assert.equal(r.status, 1);
      assert.equal(r.attempts, 2);
    }
    // The seed task, finished before the crash, is not run again.
    const seed = await h.get(`worker/${SEED.identifier}`);
    assert.deepEqual(seed.json.taskResponseList.map((r: any) => r.attempts), [1, 1]);
  });

  it('keeps a task for an endpoint that is not running and delivers it when it starts', async function () {
    await h.post('worker', { identifier: 'later', payload: { sleep: 0 }, endpoints: ['console1', 'console3'] });
    const partial = await h.waitForStatus('worker', 'later', ['INCOMPLETE'], 15_000);
    assert.deepEqual(partial.taskResponseList.map((r: any) => [r.endpoint, r.state]), [['console1', 'succeeded'], ['console3', 'missing']]);
    assert.equal(await proc.stop('SIGINT'), 0);
    proc = await h.startAllInOne([...CONSOLES, { name: 'console3', task_types: ['worker'] }], false);
    const done = await h.waitForStatus('worker', 'later', ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => r.endpoint).sort(), ['console1', 'console3']);
  });

  it('ends with `npm start`: a signal to npm reaches the node process it started', async function () {
    const port = await freePort();
    const db = path.join(os.tmpdir(), `tasker-npm-start-${process.pid}-${port}.sqlite`);
    try {
      const npm = h.spawnExternal('npm start', 'npm', ['start', '--', '--mode', 'standalone'], {
        ...h.env, TASKER_API_PORT: String(port), TASKER_MANAGER__ENDPOINTS: '[]', TASKER_MANAGER__DB__URI: `sqlite:${db}`,
      });
      await npm.waitForLog((l) => String(l.text ?? '').startsWith(`tasker (standalone mode) listening on http://127.0.0.1:${port}`), 90_000, 'listening line');
      const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(npm.child.pid)], { encoding: 'utf8' }).trim().split('\n');
      const node = children.map((l) => l.trim().split(/\s+/)).find((f) => f[1] === 'node' && f.includes('dist/scripts/start.js'));
      assert.ok(node, `npm's children: ${children.join('; ')}`);
      const nodePid = Number(node[0]);
      await npm.stop('SIGTERM');
      const alive = (): boolean => { try { process.kill(nodePid, 0); return true; } catch { return false; } };
      for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(), false, `node ${nodePid} still running after npm got SIGTERM`);
      assert.ok(npm.raw.some((l) => l.includes('"msg":"shut down"')), npm.raw.slice(-5).join('\n'));
    } finally {
      for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
    }
  });
});
