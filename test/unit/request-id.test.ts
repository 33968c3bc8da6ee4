import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, AppDeps } from '../../api/app';
import { OPEN_ACCESS } from '../../api/auth';
import { Metrics } from '../../api/metrics';
import { createLogger } from '../../lib/logger';

/** The koa application with a task service that fails: what a 5xx answer and its log line carry. */
describe('request id (koa application)', function () {
  const lines: Record<string, any>[] = [];
  let server: http.Server;
  let base: string;

  before(async function () {
    const logger = createLogger({}, 'info', { destination: { write: (s: string) => { lines.push(JSON.parse(s)); } } });
    const service = { get: async () => { throw new Error('database exploded'); } };
    const app = createApp({
      service, operations: {}, endpoints: {}, hub: {}, taskTypes: ['worker'], bodyLimit: 1024, guard: OPEN_ACCESS, tokens: {}, auth: false, version: '0', metrics: new Metrics({ taskTypes: ['worker'], processMetrics: false }), health: {}, logger, draining: () => false,
    } as unknown as AppDeps);
    server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async function () {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('answers a 500 with the given X-Request-Id and logs the failure with it as req_id', async function () {
    const res = await fetch(`${base}/worker/t1`, { headers: { 'X-Request-Id': 'abc-500' } });
    assert.equal(res.status, 500);
    assert.equal(res.headers.get('x-request-id'), 'abc-500');
    assert.deepEqual(await res.json(), { error: { code: 'internal_error', message: 'internal error' } });
    const failed = lines.filter((l) => l.msg === 'request failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].req_id, 'abc-500');
    assert.equal(failed[0].err.message, 'database exploded');
  });

  it('gives a request without one a new id, the same on its answer and its log line', async function () {
    const res = await fetch(`${base}/worker/t2`);
    const id = res.headers.get('x-request-id');
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    await res.arrayBuffer();
    assert.equal(lines.filter((l) => l.msg === 'request failed').at(-1)?.req_id, id);
  });
});
