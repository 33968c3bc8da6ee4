import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import http from 'node:http';
import { Harness } from '../support/harness';

const TASKS = 10_000;
const CLIENTS = 200;
const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];

function post(agent: Agent, port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/worker', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** 10,000 POSTs from 200 concurrent clients: nothing lost, nothing doubled, no 5xx. */
describe('faults: load', function () {
  const h = new Harness({ waitTimeout: 600 });

  before(async function () {
    await h.setup(this);
    await h.startApi();
    await Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'])));
  });

  after(async function () {
    await h.teardown();
  });

  it('keeps every accepted task, with exactly one response per endpoint, all DONE, queues empty', async function () {
    const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
    const statuses = new Map<number, number>();
    const accepted: { type: string; identifier: string }[] = [];
    let next = 0;
    try {
      await Promise.all(Array.from({ length: CLIENTS }, async () => {
        while (next < TASKS) {
          const identifier = `load-${next++}`;
          const status = await post(agent, h.port, JSON.stringify({ identifier, payload: { sleep: 0, n: identifier }, endpoints: ENDPOINTS }));
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status >= 200 && status < 300) accepted.push({ type: 'worker', identifier });
        }
      }));
    } finally {
      agent.destroy();
    }
    assert.deepEqual([...statuses.entries()], [[201, TASKS]]);
    await h.checkInvariants(accepted, QUEUES, 600_000);
    const rows = await h.query('SELECT COUNT(*) AS n FROM task_response');
    assert.equal(Number(rows[0].n), TASKS * ENDPOINTS.length);
  });
});
