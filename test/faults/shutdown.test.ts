import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../config/loader';
import { Harness, Proc } from '../support/harness';

const run = promisify(execFile);
const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];

/** POST on a fresh connection (no keep-alive), resolving with the status or the network error. */
function postOnce(port: number, body: unknown): Promise<number | Error> {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/worker', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', resolve);
    req.end(data);
  });
}

/** SIGTERM and pm2 reload: in-flight work finishes, nothing is refused or lost. */
describe('faults: graceful shutdown', function () {
  // Handlers may run longer than manager.shutdown_timeout (5 s in the test mode).
  const h = new Harness({ waitTimeout: 60, handlerTimeout: 30 });
  const accepted: { type: string; identifier: string }[] = [];
  let api: Proc;
  let managers: Proc[] = [];

  before(async function () {
    await h.setup(this);
    api = await h.startApi();
    managers = await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    await h.teardown();
  });

  async function post(identifier: string, sleep: number): Promise<any> {
    const res = await h.post('worker', { identifier, payload: { sleep }, endpoints: ENDPOINTS });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    accepted.push({ type: 'worker', identifier });
    return res.json;
  }

  it('lets a running handler finish and ack on SIGTERM', async function () {
    const task = await post('finish-me', 1.5);
    await managers[0].waitForLog((l) => l.msg === 'running handler' && l.taskId === task.id);
    assert.equal(await managers[0].stop('SIGTERM'), 0);
    const finished = managers[0].lines.findIndex((l) => l.msg === 'task finished' && l.taskId === task.id);
    const shutdown = managers[0].lines.findIndex((l) => l.msg === 'shut down');
    assert.ok(finished >= 0 && finished < shutdown, 'the handler finished before the process ended');
    managers[0] = await h.startManager('console1', ['worker']);
    await h.checkInvariants(accepted, QUEUES);
    const rows = await h.query('SELECT MAX(attempts) AS n FROM task_response WHERE task_id = ?', [task.id]);
    assert.equal(Number(rows[0].n), 1, 'not run again after the restart');
  });

  it('hands back a handler that outlasts manager.shutdown_timeout; it runs again on restart', async function () {
    const task = await post('too-long', h.config.manager.shutdown_timeout + 3);
    await managers[0].waitForLog((l) => l.msg === 'running handler' && l.taskId === task.id);
    assert.equal(await managers[0].stop('SIGTERM'), 0);
    assert.ok(managers[0].lines.some((l) => l.msg === 'shutdown timeout: unfinished tasks are handed back'));
    managers[0] = await h.startManager('console1', ['worker']);
    await h.checkInvariants(accepted, QUEUES);
    const rows = await h.query(`SELECT attempts, errnr FROM task_response WHERE task_id = ? AND endpoint = 'console1'`, [task.id]);
    assert.deepEqual(rows.map((r) => [Number(r.attempts), Number(r.errnr)]), [[2, 0]]);
  });

  it('completes an in-flight request when the API gets SIGTERM', async function () {
    const status = new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: h.port, method: 'POST', path: '/worker', agent: false,
        headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.write('{"identifier": "in-flight", "endpoints": ["console1", "console2"], ');
      // The request is inside the server when the signal arrives; the rest of the body comes later.
      void api.waitForLog((l) => l.msg === 'shutting down').then(() => setTimeout(() => req.end('"payload": {"sleep": 0}}'), 300));
      setTimeout(() => api.child.kill('SIGTERM'), 200);
    });
    assert.equal(await status, 201);
    accepted.push({ type: 'worker', identifier: 'in-flight' });
    assert.equal(await api.exited, 0);
    api = await h.startApi();
    await h.checkInvariants(accepted, QUEUES);
  });

  it('loses no request across `pm2 reload` of the API', async function () {
    assert.equal(await api.stop(), 0);
    const pm2Home = mkdtempSync(path.join(os.tmpdir(), 'tasker-pm2-'));
    const env = { ...h.env, PM2_HOME: pm2Home, TASKER_MODE: 'test' };
    const pm2 = (...args: string[]): Promise<unknown> =>
      run(process.execPath, [path.join(projectRoot(), 'node_modules', 'pm2', 'bin', 'pm2'), ...args], { env, cwd: projectRoot(), timeout: 120_000 });
    try {
      await pm2('start', 'ecosystem.config.js', '--only', 'tasker-api');
      const results: (number | Error)[] = [];
      let stop = false;
      let n = 0;
      const clients = Array.from({ length: 4 }, async () => {
        while (!stop) {
          const identifier = `reload-${n++}`;
          const res = await postOnce(h.port, { identifier, payload: { sleep: 0 }, endpoints: ENDPOINTS });
          results.push(res);
          if (res === 201) accepted.push({ type: 'worker', identifier });
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await pm2('reload', 'tasker-api');
      await new Promise((resolve) => setTimeout(resolve, 500));
      stop = true;
      await Promise.all(clients);
      const failed = results.filter((r) => r !== 201);
      assert.ok(results.length > 20, `only ${results.length} requests`);
      assert.deepEqual(failed.map(String), []);
      await h.checkInvariants(accepted, QUEUES);
    } finally {
      await pm2('kill').catch(() => undefined);
      rmSync(pm2Home, { recursive: true, force: true });
    }
  });
});
