import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import http, { type Server } from 'node:http';
import Koa from 'koa';
import { errorMiddleware } from '../../api/error-middleware';
import { uiMiddleware } from '../../api/ui';
import { createLogger } from '../../lib/logger';

/** The dashboard's static files: only those of ui/, with their types, and nothing else under /ui/. */
describe('the dashboard\'s static files (/ui/)', function () {
  let server: Server;
  let base = '';
  let dir = '';

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-ui-'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(path.join(dir, 'app.js'), 'export {};');
    writeFileSync(path.join(dir, 'notes.txt'), 'not served');
    writeFileSync(path.join(os.tmpdir(), 'tasker-ui-secret.js'), 'secret');
    const app = new Koa();
    app.silent = true;
    app.use(errorMiddleware(createLogger({}, 'error')));
    app.use(uiMiddleware(dir));
    app.use(async (ctx) => { ctx.body = { fallthrough: ctx.path }; });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  /** A request sent as written: fetch() would resolve dot segments and add headers of its own. */
  function raw(pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const { hostname, port } = new URL(base);
      http.get({ hostname, port, path: pathname, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
  }

  after(async function () {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
    rmSync(path.join(os.tmpdir(), 'tasker-ui-secret.js'), { force: true });
  });

  it('serves index.html at /ui/ and redirects /ui and / there', async function () {
    const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), '/ui/');
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');
    const index = await fetch(`${base}/ui/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(String(index.headers.get('content-security-policy')), /script-src 'self'/);
    assert.equal(await index.text(), '<!doctype html><title>t</title>');
  });

  it('serves the modules as JavaScript, and answers 304 to a fresh copy', async function () {
    const js = await fetch(`${base}/ui/app.js`);
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal((await raw('/ui/app.js', { 'if-none-match': String(js.headers.get('etag')) })).status, 304);
    assert.equal((await raw('/ui/app.js', { 'if-none-match': 'W/"other"' })).status, 200);
  });

  it('answers 404 for anything else under /ui/: other files, other types, paths out of the folder', async function () {
    for (const p of ['/ui/nope.js', '/ui/notes.txt', '/ui/../tasker-ui-secret.js', '/ui/%2e%2e/tasker-ui-secret.js', '/ui/..%2ftasker-ui-secret.js', '/ui//etc/passwd', '/ui/sub/app.js']) {
      const res = await raw(p);
      assert.equal(res.status, 404, p);
      assert.equal(JSON.parse(res.body).error.code, 'not_found', p);
    }
  });

  it('refuses other methods, and leaves every other path to the API', async function () {
    const post = await fetch(`${base}/ui/app.js`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.deepEqual(await (await fetch(`${base}/uix`)).json(), { fallthrough: '/uix' });
    assert.deepEqual(await (await fetch(`${base}/worker/ui`)).json(), { fallthrough: '/worker/ui' });
  });
});
