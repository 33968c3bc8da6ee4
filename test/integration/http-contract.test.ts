import assert from 'node:assert/strict';
import { Backend, Harness, Proc } from '../support/harness';

/**
 * The HTTP contract of SPEC §4 and the bad-input rows of SPEC §8, through the real processes, on both
 * setups (RabbitMQ + MariaDB, and the standalone process) so that they cannot drift apart.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`HTTP contract (${backend})`, function () {
  const h = new Harness({ backend });
  /** The process that serves HTTP: the API, or the all-in-one process. */
  let api: Proc;

  before(async function () {
    await h.setup(this);
    // Only `worker` has an endpoint: `backup` tasks that list none have nobody to go to.
    [api] = await h.startSystem([{ name: 'console1', task_types: ['worker'] }]);
  });

  after(async function () {
    await h.teardown();
  });

  async function taskCount(): Promise<number> {
    const rows = await h.query('SELECT COUNT(*) AS n FROM task');
    return Number(rows[0].n);
  }

  describe('idempotency', function () {
    const body = { identifier: 'dup-1', payload: { a: 1, b: [1, 2] }, endpoints: ['console1'] };

    it('answers a repeat with the same body 200 and the same task, without sending it again', async function () {
      const first = await h.post('worker', { ...body, payload: { ...body.payload, sleep: 0 } });
      assert.equal(first.status, 201);
      await h.waitForStatus('worker', 'dup-1', ['DONE']);
      // Same content, keys in another order.
      const again = await h.post('worker', { endpoints: ['console1'], payload: { sleep: 0, b: [1, 2], a: 1 }, identifier: 'dup-1' });
      assert.equal(again.status, 200);
      assert.equal(again.json.id, first.json.id);
      assert.equal(again.json.status, 'DONE');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const rows = await h.query('SELECT attempts FROM task_response WHERE task_id = ?', [first.json.id]);
      assert.deepEqual(rows.map((r) => Number(r.attempts)), [1]);
    });

    it('answers 409 for the same identifier with a different body and changes nothing', async function () {
      const before = await taskCount();
      const res = await h.post('worker', { identifier: 'dup-1', payload: { other: true }, endpoints: ['console1'] });
      assert.equal(res.status, 409);
      assert.equal(res.json.error.code, 'identifier_conflict');
      assert.equal(await taskCount(), before);
      const stored = await h.get('worker/dup-1');
      assert.deepEqual(stored.json.task.payload, { a: 1, b: [1, 2], sleep: 0 });
    });

    it('answers 422 for an Idempotency-Key reused with another retry body, and replays it with the same body', async function () {
      const key = { 'Idempotency-Key': `retry-${backend}` };
      const first = await h.post('worker/dup-1/retry', { endpoints: ['console1'] }, key);
      assert.equal(first.status, 200, JSON.stringify(first.json));
      await h.waitForStatus('worker', 'dup-1', ['DONE']);
      const events = async (): Promise<number> => Number((await h.query('SELECT COUNT(*) AS n FROM task_event'))[0].n);
      const before = await events();
      const other = await h.post('worker/dup-1/retry', { endpoints: 'failed' }, key);
      assert.equal(other.status, 422, JSON.stringify(other.json));
      assert.equal(other.json.error.code, 'idempotency_key_mismatch');
      const same = await h.post('worker/dup-1/retry', { endpoints: ['console1'] }, key);
      assert.equal(same.status, 200, JSON.stringify(same.json));
      assert.deepEqual(same.json.retried, ['console1']);
      assert.equal(await events(), before);
    });

    it('keeps identifiers per task type', async function () {
      const res = await h.post('backup', { identifier: 'dup-1', payload: { sleep: 0 }, endpoints: ['console1'] });
      assert.equal(res.status, 201);
      assert.equal(res.json.type, 'backup');
    });

    it('tells identifiers apart by case', async function () {
      const upper = await h.post('worker', { identifier: 'Case-A', payload: { sleep: 0, n: 1 }, endpoints: ['console1'] });
      const lower = await h.post('worker', { identifier: 'case-a', payload: { sleep: 0, n: 2 }, endpoints: ['console1'] });
      assert.equal(upper.status, 201);
      assert.equal(lower.status, 201);
      assert.notEqual(lower.json.id, upper.json.id);
      const readUpper = await h.get('worker/Case-A');
      const readLower = await h.get('worker/case-a');
      assert.deepEqual([readUpper.json.task.payload.n, readLower.json.task.payload.n], [1, 2]);
      assert.equal((await h.get('worker/CASE-A')).status, 404);
    });
  });

  describe('bad input: a JSON error, nothing stored', function () {
    const cases: { name: string; type?: string; body: string; headers?: Record<string, string>; status: number; code: string }[] = [
      { name: 'invalid JSON', body: '{"identifier": "x1",', status: 400, code: 'invalid_request' },
      { name: 'a body that is not an object', body: '["x1"]', status: 400, code: 'invalid_request' },
      { name: 'a JSON string body', body: '"x1"', status: 400, code: 'invalid_request' },
      { name: 'a missing identifier', body: '{"payload": {}}', status: 400, code: 'invalid_request' },
      { name: 'an empty identifier', body: '{"identifier": ""}', status: 400, code: 'invalid_request' },
      { name: 'an identifier that is not a string', body: '{"identifier": 42}', status: 400, code: 'invalid_request' },
      { name: 'an identifier with a slash', body: '{"identifier": "a/b"}', status: 400, code: 'invalid_request' },
      { name: 'an identifier over 64 characters', body: JSON.stringify({ identifier: 'x'.repeat(65) }), status: 400, code: 'invalid_request' },
      { name: 'endpoints not a list', body: '{"identifier": "x2", "endpoints": "console1"}', status: 400, code: 'invalid_request' },
      { name: 'endpoints with a non-name', body: '{"identifier": "x3", "endpoints": ["console1", 7]}', status: 400, code: 'invalid_request' },
      { name: 'endpoints with a bad name', body: '{"identifier": "x4", "endpoints": ["../etc"]}', status: 400, code: 'invalid_request' },
      { name: 'an endpoint listed twice', body: '{"identifier": "x5", "endpoints": ["a", "a"]}', status: 400, code: 'invalid_request' },
      { name: 'an unknown field', body: '{"identifier": "x6", "priority": 1}', status: 400, code: 'invalid_request' },
      { name: 'a payload nested too deep', body: `{"identifier": "x7", "payload": ${'['.repeat(50_000)}${']'.repeat(50_000)}}`, status: 400, code: 'invalid_request' },
      { name: 'a content type that is not JSON', body: '{"identifier": "x7"}', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
      { name: 'form data', body: 'identifier=x8', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type' },
      { name: 'an unknown task type', type: 'nosuchtype', body: '{"identifier": "x9"}', status: 404, code: 'not_found' },
      { name: 'no endpoints listed and none registered', type: 'backup', body: '{"identifier": "x10"}', status: 422, code: 'no_endpoints' },
    ];
    for (const c of cases) {
      it(`${c.status} for ${c.name}`, async function () {
        const before = await taskCount();
        const res = await h.post(c.type ?? 'worker', c.body, c.headers);
        assert.equal(res.status, c.status, JSON.stringify(res.json));
        assert.equal(res.json.error.code, c.code);
        assert.equal(typeof res.json.error.message, 'string');
        assert.equal(await taskCount(), before);
      });
    }

    // Number() reads all of these as numbers (1e400 as Infinity, which reached the SQL and the wait's timer).
    const badNumbers = ['1e400', '-0', 'NaN', 'Infinity', '-Infinity', '1.5', ' 1', '1 ', '0x10', '1e2', '', '+1', '01', '9007199254740993', '0', '-1'];
    const limited = ['worker', 'events', 'endpoints', 'endpoints/console1/responses', 'worker/dup-1/events', 'worker/dup-1/responses'];
    it('400 naming the parameter for every malformed or out-of-range limit, on every route that takes one', async function () {
      for (const path of limited) {
        for (const v of badNumbers) {
          const res = await h.get(`${path}?limit=${encodeURIComponent(v)}`);
          assert.equal(res.status, 400, `${path}?limit=${JSON.stringify(v)}: ${JSON.stringify(res.json)}`);
          assert.equal(res.json.error.code, 'invalid_request');
          assert.match(res.json.error.message, /'limit'/);
        }
        assert.equal((await h.get(`${path}?limit=2`)).status, 200, path);
      }
    });

    it('400 naming wait for every malformed or out-of-range wait', async function () {
      for (const v of [...badNumbers.filter((b) => b !== '1.5'), '61', '60.0000000001']) {
        const res = await h.get(`worker/dup-1?wait=${encodeURIComponent(v)}`);
        assert.equal(res.status, 400, `wait=${JSON.stringify(v)}: ${JSON.stringify(res.json)}`);
        assert.match(res.json.error.message, /'wait'/);
      }
      assert.equal((await h.get('worker/dup-1?wait=0.5')).status, 200);
    });

    it('413 for a body over api.body_limit, before anything is stored', async function () {
      const before = await taskCount();
      const big = JSON.stringify({ identifier: 'huge', payload: { blob: 'x'.repeat(h.config.api.body_limit) }, endpoints: ['console1'] });
      const res = await h.post('worker', big);
      assert.equal(res.status, 413);
      assert.equal(res.json.error.code, 'payload_too_large');
      assert.equal(await taskCount(), before);
      assert.equal((await h.get('worker/huge')).status, 404);
    });

    it('413 for a chunked body over the limit (no Content-Length)', async function () {
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const stream = new ReadableStream({
        pull(controller) {
          if (sent > h.config.api.body_limit + chunk.length) controller.close();
          else { controller.enqueue(sent === 0 ? Buffer.from('{"identifier":"chunked","payload":"') : chunk); sent += chunk.length; }
        },
      });
      const res = await fetch(`${h.baseUrl}/worker`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half',
      } as RequestInit).catch((err: Error) => err);
      // The server may answer 413 and close before the client finished sending.
      if (res instanceof Response) {
        assert.equal(res.status, 413);
        assert.equal(((await res.json()) as any).error.code, 'payload_too_large');
      }
      assert.equal((await h.get('worker/chunked')).status, 404);
    });

    it('404 for an unknown identifier and an unknown task type on GET', async function () {
      const missing = await h.get('worker/no-such-task');
      assert.equal(missing.status, 404);
      assert.equal(missing.json.error.code, 'not_found');
      const type = await h.get('nosuchtype/x');
      assert.equal(type.status, 404);
    });

    it('405 for a method the route does not have, 404 for unknown paths', async function () {
      const put = await fetch(`${h.baseUrl}/worker`, { method: 'PUT' });
      assert.equal(put.status, 405);
      assert.equal(((await put.json()) as any).error.code, 'method_not_allowed');
      const deep = await h.get('worker/a/b');
      assert.equal(deep.status, 404);
      assert.equal(deep.json.error.code, 'not_found');
    });
  });

  describe('request id', function () {
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const send = (method: string, pathname: string, headers: Record<string, string> = {}, body?: unknown): Promise<Response> =>
      fetch(`${h.baseUrl}/${pathname}`, {
        method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body),
      });

    it('echoes a valid X-Request-Id and puts it as req_id on the lines the request logs', async function () {
      const created = await send('POST', 'worker', { 'X-Request-Id': 'client.req-1:post' }, { identifier: 'rid-1', payload: { sleep: 10 }, endpoints: ['console1'] });
      assert.equal(created.status, 201);
      assert.equal(created.headers.get('x-request-id'), 'client.req-1:post');
      const cancelled = await send('POST', 'worker/rid-1/cancel', { 'X-Request-Id': 'client.req-1:cancel' }, {});
      assert.equal(cancelled.status, 200);
      assert.equal(cancelled.headers.get('x-request-id'), 'client.req-1:cancel');
      const line = await api.waitForLog((l) => l.msg === 'task cancelled' && l.identifier === 'rid-1', 10_000, 'the cancel logged');
      assert.equal(line.req_id, 'client.req-1:cancel');
    });

    it('generates one, different for each request, when none or an unusable one is sent; error answers carry it too', async function () {
      const answers = await Promise.all([
        send('GET', 'worker/no-such-task'),
        send('GET', 'worker/no-such-task', { 'X-Request-Id': 'has spaces' }),
        send('GET', 'worker/no-such-task', { 'X-Request-Id': 'x'.repeat(129) }),
        send('PUT', 'worker'),
        send('POST', 'worker', {}, { identifier: 'a/b' }),
      ]);
      assert.deepEqual(answers.map((a) => a.status), [404, 404, 404, 405, 400]);
      const ids = answers.map((a) => a.headers.get('x-request-id') ?? '');
      for (const id of ids) assert.match(id, UUID);
      assert.equal(new Set(ids).size, ids.length);
      await Promise.all(answers.map((a) => a.arrayBuffer()));
    });
  });
});
