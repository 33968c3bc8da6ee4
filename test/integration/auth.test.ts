import assert from 'node:assert/strict';
import { Harness } from '../support/harness';

/**
 * `api.auth: tokens` through the real API and a real manager: every route of the document refuses a
 * request without a valid token (401) or without the route's scope (403), takes it with the scope, and
 * the token's name is recorded in the history of what it did.
 */
describe('auth with scopes (api.auth: tokens)', function () {
  // Every route is tried with bad tokens from one address and key: the failure limits (auth-abuse.test.ts) out of the way.
  const h = new Harness({ env: { TASKER_API__AUTH: 'tokens', TASKER_API__AUTH_CACHE: '0.5', TASKER_API__AUTH_KEY_FAILURES: '100000', TASKER_API__AUTH_ADDRESS_FAILURES: '100000' } });
  const tokens: Record<string, string> = {};
  let doc: any;

  const createToken = (name: string, scopes: string[]): Promise<string> => h.createToken(name, scopes);

  const call = async (method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${h.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
  };

  before(async function () {
    await h.setup(this);
    await h.startApi();
    await h.startManager('console1', ['worker', 'backup']);
    for (const [name, scopes] of Object.entries({
      admin: ['admin'], reader: ['read'], operator: ['operate', 'read'], deployer: ['submit:worker'], anything: ['submit:*'], gone: ['admin'],
    })) tokens[name] = await createToken(name, scopes);
    const { code } = await h.runScript('token.js', ['revoke', 'gone']);
    assert.equal(code, 0);
    const res = await call('GET', '/openapi.json');
    assert.equal(res.status, 200, 'the document needs no token');
    doc = res.json;
  });

  after(async function () {
    await h.teardown();
  });

  /** A request to each operation of the document, with the token that lacks its scope. */
  function operations(): { method: string; path: string; scope: string; body?: unknown; lacking: string }[] {
    const out = [];
    for (const [template, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (!op['x-scope']) continue;
        const path = template.replace('{type}', 'worker').replace('{identifier}', 'auth-1').replace('{name}', 'console1');
        const body = method === 'post' ? (template === '/{type}' ? { identifier: 'auth-x', endpoints: ['console1'] } : template === '/tokens' ? { name: 'made', scopes: ['read'] } : { endpoints: 'failed' }) : undefined;
        const scope: string = op['x-scope'].replace('{type}', 'worker');
        const lacking = scope === 'read' ? 'deployer' : scope === 'admin' ? 'operator' : 'reader';
        out.push({ method: method.toUpperCase(), path, scope, body, lacking });
      }
    }
    return out;
  }

  it('answers 401 without a valid token and 403 without the scope on every route, changing nothing', async function () {
    const ops = operations();
    assert.ok(ops.length >= 13, `${ops.length} secured operations`);
    const before = await h.query('SELECT COUNT(*) AS n FROM task');
    const wrong = tokens.admin.slice(0, -4) + 'AAAA';
    for (const op of ops) {
      const what = `${op.method} ${op.path}`;
      const none = await call(op.method, op.path, undefined, op.body);
      assert.equal(none.status, 401, `${what} without a token`);
      assert.equal(none.json.error.code, 'unauthorized');
      assert.match(String(none.headers.get('www-authenticate')), /^Bearer/);
      assert.equal((await call(op.method, op.path, 'not-a-token', op.body)).status, 401, `${what} with a malformed token`);
      assert.equal((await call(op.method, op.path, wrong, op.body)).status, 401, `${what} with a wrong secret`);
      assert.equal((await call(op.method, op.path, tokens.gone, op.body)).status, 401, `${what} with a revoked token`);
      const lacking = await call(op.method, op.path, tokens[op.lacking], op.body);
      assert.equal(lacking.status, 403, `${what} with ${op.lacking}'s token`);
      assert.equal(lacking.json.error.code, 'forbidden');
      assert.ok(lacking.json.error.message.includes(op.scope), lacking.json.error.message);
    }
    assert.deepEqual(await h.query('SELECT COUNT(*) AS n FROM task'), before);
    assert.deepEqual((await h.query('SELECT name FROM api_token ORDER BY name')).map((r: any) => r.name), ['admin', 'anything', 'deployer', 'gone', 'operator', 'reader']);
  });

  it('lets each scope do what it names, and records the token in the history', async function () {
    const created = await call('POST', '/worker', tokens.deployer, { identifier: 'auth-1', payload: { sleep: 0 }, endpoints: ['console1'] });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal((await call('POST', '/backup', tokens.deployer, { identifier: 'auth-2', endpoints: ['console1'] })).status, 403);
    assert.equal((await call('POST', '/backup', tokens.anything, { identifier: 'auth-2', endpoints: ['console1'] })).status, 201);
    const read = await call('GET', '/worker/auth-1?wait=10', tokens.reader);
    assert.equal(read.status, 200);
    assert.equal(read.json.task.status, 'DONE');
    assert.equal((await call('POST', '/worker/auth-1/cancel', tokens.reader)).status, 403);
    const retried = await call('POST', '/worker/auth-1/retry', tokens.operator, { endpoints: ['console1'] });
    assert.equal(retried.status, 200, JSON.stringify(retried.json));
    assert.equal((await call('GET', '/worker/auth-1?wait=10', tokens.reader)).json.task.status, 'DONE');
    const events = await call('GET', '/worker/auth-1/events', tokens.reader);
    const actors = Object.fromEntries(events.json.events.map((e: any) => [e.kind, e.actor]));
    assert.equal(actors.created, 'deployer');
    assert.equal(actors.retried, 'operator');
    const admin = await call('GET', '/tokens', tokens.admin);
    assert.equal(admin.status, 200);
    const deployer = admin.json.tokens.find((t: any) => t.name === 'deployer');
    assert.ok(deployer.last_used_time, 'last use recorded');
    assert.ok(!JSON.stringify(admin.json).includes(tokens.deployer.slice(-43)), 'no secret is shown');
    const stored = await h.query<{ secret_hash: string }>('SELECT secret_hash FROM api_token WHERE name = ?', ['deployer']);
    assert.match(stored[0].secret_hash, /^[0-9a-f]{64}$/);
    assert.ok(!stored[0].secret_hash.includes(tokens.deployer.slice(-43)), 'stored hashed');
  });

  it('stops taking a token once it is revoked, within api.auth_cache', async function () {
    const made = await call('POST', '/tokens', tokens.admin, { name: 'temporary', scopes: ['read'] });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    assert.equal((await call('GET', '/endpoints', made.json.token)).status, 200);
    assert.equal((await call('POST', '/tokens', tokens.admin, { name: 'temporary', scopes: ['read'] })).status, 409);
    assert.equal((await call('DELETE', '/tokens/temporary', tokens.admin)).status, 200);
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      status = (await call('GET', '/endpoints', made.json.token)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 401);
    assert.equal((await call('DELETE', '/tokens/nosuch', tokens.admin)).status, 404);
  });
});
