import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { readTime } from '../../api/storage/sql-values';
import { freePort, Harness, type LogLine, type Proc } from '../support/harness';
import { parseMetrics, valueOf } from '../support/prometheus';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** The deployment's secret for tasks' own `notify` URLs (api.webhooks.notify_secret). */
const NOTIFY_SECRET = `whsec_${Buffer.alloc(24, 42).toString('base64')}`;

/**
 * Standard Webhooks verification as a receiver would write it from the specification, apart from the
 * server's code: the secret's key is the base64 after `whsec_`, the header a space-separated list of
 * `v1,<base64>` signatures of `<id>.<timestamp>.<body>`, and a timestamp more than five minutes off refused.
 */
function verify(secret: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sigs !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
  return sigs.split(' ').some((s) => {
    const [version, sig] = s.split(',');
    const given = Buffer.from(sig ?? '', 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** The same check by the standardwebhooks package (its Webhook class), the library receivers use. */
function packageVerify(secret: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  try {
    new Webhook(secret).verify(body, {
      'webhook-id': String(headers['webhook-id']), 'webhook-timestamp': String(headers['webhook-timestamp']),
      'webhook-signature': String(headers['webhook-signature']),
    });
    return true;
  } catch {
    return false;
  }
}

interface Received {
  id: string;
  at: number;
  path: string;
  body: any;
  raw: string;
  /** Both the independent check and the standardwebhooks package verify it. */
  valid: boolean;
  /** The two checks' answers, apart (they must agree). */
  checks: [boolean, boolean];
  headers: http.IncomingHttpHeaders;
}

/** A real HTTP receiver: answers what `answer` says, records every request and checks every signature against `secret`. */
class Receiver {
  readonly got: Received[] = [];
  secret = '';
  answer: (n: number, req: http.IncomingMessage) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 });
  port = 0;
  private server: http.Server | null = null;

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const checks: [boolean, boolean] = [verify(this.secret, req.headers, raw), packageVerify(this.secret, req.headers, raw)];
        this.got.push({ id: String(req.headers['webhook-id']), at: Date.now(), path: req.url ?? '', body: JSON.parse(raw), raw, valid: checks[0] && checks[1], checks, headers: req.headers });
        const a = this.answer(this.got.length, req);
        // 0: no answer at all (the connection is held until the sender gives up or dies).
        if (a.status !== 0) res.writeHead(a.status, a.headers ?? {}).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** The events received per task identifier, in arrival order. */
  byTask(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const r of this.got) {
      const k = r.body.data.task.identifier as string;
      m.set(k, [...(m.get(k) ?? []), r.body.type as string]);
    }
    return m;
  }
}

/**
 * Webhooks through two real API instances and a manager process, RabbitMQ and MariaDB, to real local HTTP
 * receivers that verify every signature: delivery once per id and in order per task, retries of a
 * receiver that is down or answers 500, a subscription disabled after failing for api.webhooks.retry_for,
 * redirects not followed, private addresses refused, bad bodies refused naming the field, and a delivery
 * cut off by a SIGKILL sent again after the restart.
 */
describe('webhooks (RabbitMQ + MariaDB, real receivers)', function () {
  const h = new Harness({
    handlerTimeout: 1,
    env: {
      TASKER_API__WEBHOOKS__ALLOW_HTTP: 'true', TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'true', TASKER_API__WEBHOOKS__INTERVAL: '0.1',
      TASKER_API__WEBHOOKS__RETRY_BASE: '0.2', TASKER_API__WEBHOOKS__RETRY_MAX: '2', TASKER_API__WEBHOOKS__TIMEOUT: '2', TASKER_API__WEBHOOKS__RETRY_FOR: '8',
      TASKER_API__WEBHOOKS__LOG_KEEP: '60', TASKER_API__WEBHOOKS__ROTATION_OVERLAP: '4',
      TASKER_API__WEBHOOKS__ALLOW_PER_TASK_URLS: 'true', TASKER_API__WEBHOOKS__NOTIFY_SECRET: NOTIFY_SECRET,
    },
  });
  let api: Proc;
  let second: Proc;
  let secondPort = 0;
  const receivers: Receiver[] = [];

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${h.baseUrl}${path}`, {
      method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };

  async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  async function receiver(): Promise<Receiver> {
    const r = new Receiver();
    await r.start();
    receivers.push(r);
    return r;
  }

  async function subscribe(r: Receiver, events: string[], extra: Record<string, unknown> = {}, url = r.url): Promise<number> {
    const made = await call('POST', '/webhooks', { url, events, ...extra });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    assert.match(made.json.secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.equal(Buffer.from(made.json.secret.slice(6), 'base64').length, 24);
    r.secret = made.json.secret;
    return made.json.id as number;
  }

  async function task(identifier: string, type = 'worker', payload: unknown = { sleep: 0 }): Promise<void> {
    const res = await h.post(type, { identifier, payload, endpoints: ['console1'] });
    assert.equal(res.status, 201, JSON.stringify(res.json));
  }

  /** A metric's values on both API instances. */
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number[]> => Promise.all([h.port, secondPort].map(async (port) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return valueOf(parseMetrics(text), name, labels);
  }));
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

  const deliveries = async (id: number): Promise<any[]> => {
    const res = await call('GET', `/webhooks/${id}/deliveries?limit=1000`);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json.deliveries;
  };

  /** The tasker CLI, run as a user runs it, against the first API instance. */
  const root = path.resolve(__dirname, '..', '..', '..');
  const cli = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'tasker.js'), ...args], {
      cwd: root, env: { PATH: process.env.PATH, TASKER_URL: h.baseUrl }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });

  before(async function () {
    await h.setup(this);
    // Two instances, both running the delivery job: every test's receiver checks that each id comes once.
    api = await h.startApi();
    secondPort = await freePort();
    second = await h.startApi(secondPort);
    await h.startManager('console1', ['worker', 'backup']);
  });

  after(async function () {
    for (const r of receivers) await r.stop();
    await h.teardown();
  });

  it('refuses bad subscription bodies with a 400 naming the field, and stores nothing', async function () {
    const cases: [unknown, RegExp][] = [
      [{ events: ['task.done'] }, /url/],
      [{ url: 'ftp://hooks.example.com/x', events: ['task.done'] }, /^url: must be https/],
      [{ url: 'not a url', events: ['task.done'] }, /^url: must be an absolute URL/],
      [{ url: 'https://u:p@hooks.example.com/x', events: ['task.done'] }, /^url: must not carry/],
      [{ url: 'https://hooks.example.com/x' }, /events/],
      [{ url: 'https://hooks.example.com/x', events: [] }, /events/],
      [{ url: 'https://hooks.example.com/x', events: ['task.finished'] }, /events/],
      [{ url: 'https://hooks.example.com/x', events: ['task.done', 'task.done'] }, /events/],
      [{ url: 'https://hooks.example.com/x', events: ['task.done'], types: ['nosuch'] }, /^types: unknown task type 'nosuch'/],
      [{ url: 'https://hooks.example.com/x', events: ['task.done'], description: 'x'.repeat(256) }, /description/],
      [{ url: 'https://hooks.example.com/x', events: ['task.done'], selector: '' }, /selector/],
      [[], /must be a JSON object/],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/webhooks', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.error.code, 'invalid_request');
      assert.match(res.json.error.message, field, JSON.stringify(body));
    }
    // A selector that does not parse: the field and the offending character's position.
    const badSelector = await call('POST', '/webhooks', { url: 'https://hooks.example.com/x', events: ['task.done'], selector: 'role in (web' });
    assert.equal(badSelector.status, 400);
    assert.equal(badSelector.json.error.code, 'bad_selector');
    assert.match(badSelector.json.error.message, /^selector: .*position 12/);
    assert.equal(badSelector.json.error.position, 12);
    assert.deepEqual((await call('GET', '/webhooks')).json, { webhooks: [] });
    assert.equal((await call('GET', '/webhooks/1')).status, 404);
    assert.equal((await call('GET', '/webhooks/abc')).status, 404);
    assert.equal((await call('PATCH', '/webhooks/1', { enabled: true })).status, 404);
    const bad = await call('PATCH', '/webhooks/1', { events: ['nope'] });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /events/);
  });

  it('delivers each event once per id, signed, in order per task, filtered by type; GET, PATCH and DELETE manage the subscription', async function () {
    this.timeout(60_000);
    const r = await receiver();
    const id = await subscribe(r, ['task.created', 'task.done', 'response.failed'], { types: ['worker'], description: 'ordered' });
    const shown = await call('GET', `/webhooks/${id}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.json.secret, undefined, 'the secret is shown once');
    assert.deepEqual([shown.json.url, shown.json.events, shown.json.types, shown.json.enabled], [r.url, ['task.created', 'task.done', 'response.failed'], ['worker'], true]);
    const names = ['ord-1', 'ord-2', 'ord-3', 'ord-4', 'ord-5'];
    for (const n of names) await task(n);
    await task('ord-backup', 'backup');
    // Past manager.handler_timeout (1 s): the endpoint's response fails (errnr 124).
    await task('ord-slow', 'worker', { sleep: 3 });
    await h.waitForStatus('backup', 'ord-backup', ['DONE']);
    await until('every event', () => names.every((n) => r.byTask().get(n)?.length === 2) && r.byTask().get('ord-slow')?.length === 3);
    await sleep(500);
    assert.ok(r.got.every((g) => g.valid), 'every signature verifies, by the specification and by the standardwebhooks package');
    // Neither check is a rubber stamp: a changed body or another secret fails both.
    const first = r.got[0];
    const other = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
    assert.deepEqual([verify(r.secret, first.headers, `${first.raw} `), packageVerify(r.secret, first.headers, `${first.raw} `)], [false, false]);
    assert.deepEqual([verify(other, first.headers, first.raw), packageVerify(other, first.headers, first.raw)], [false, false]);
    const ids = r.got.map((g) => g.id);
    assert.equal(new Set(ids).size, ids.length, 'each webhook-id once');
    for (const n of names) assert.deepEqual(r.byTask().get(n), ['task.created', 'task.done'], n);
    assert.deepEqual(r.byTask().get('ord-slow'), ['task.created', 'response.failed', 'task.done']);
    assert.equal(r.byTask().get('ord-backup'), undefined, 'types filters');
    const done = r.got.find((g) => g.body.type === 'task.done' && g.body.data.task.identifier === 'ord-1')?.body;
    assert.equal(done.data.task.status, 'DONE');
    assert.equal(done.data.task.type, 'worker');
    assert.equal(done.data.task.link, '/worker/ord-1');
    assert.deepEqual(done.data.task.responses, { expected: 1, received: 1, finished: 1, failed: 0 });
    assert.ok(Date.parse(done.timestamp) > 0 && Date.parse(done.data.task.end_time) > 0);
    assert.equal(done.data.task.payload, undefined, 'never the task\'s payload');
    const failed = r.got.find((g) => g.body.type === 'response.failed')?.body;
    assert.equal(failed.data.event.detail.endpoints[0].endpoint, 'console1');
    assert.notEqual(failed.data.event.detail.endpoints[0].errnr, 0);
    const log = await deliveries(id);
    assert.equal(log.length, 13);
    for (const d of log) {
      assert.equal(d.status, 'delivered', JSON.stringify(d));
      assert.equal(d.http_status, 200);
      assert.equal(d.attempt, 1);
      assert.equal(d.next_time, null);
      assert.ok(d.duration_ms >= 0);
      assert.ok(ids.includes(d.message_id));
    }
    // PATCH: only task.done from now on; disabled, nothing is delivered; DELETE removes it.
    const patched = await call('PATCH', `/webhooks/${id}`, { events: ['task.done'], enabled: false });
    assert.equal(patched.status, 200);
    assert.deepEqual([patched.json.events, patched.json.enabled], [['task.done'], false]);
    await task('ord-off');
    await h.waitForStatus('worker', 'ord-off', ['DONE']);
    await sleep(1000);
    assert.equal(r.byTask().get('ord-off'), undefined, 'a disabled subscription gets nothing');
    assert.equal((await call('DELETE', `/webhooks/${id}`)).status, 200);
    assert.equal((await call('GET', `/webhooks/${id}`)).status, 404);
    assert.equal((await h.query('SELECT id FROM webhook_delivery WHERE webhook_id = ?', [id])).length, 0);
  });

  it('a receiver down (connection refused) and then up gets every event once per id, in order per task', async function () {
    this.timeout(60_000);
    const r = await receiver();
    const port = r.port;
    const id = await subscribe(r, ['task.created', 'task.done']);
    await r.stop();
    const names = ['down-1', 'down-2', 'down-3'];
    for (const n of names) await task(n);
    for (const n of names) await h.waitForStatus('worker', n, ['DONE']);
    let last: unknown;
    const retried = await until('retries of the refused deliveries', async () => {
      const log = await deliveries(id);
      last = log;
      return log.length === 6 && log.every((d) => d.status === 'pending') && log.some((d) => d.attempt >= 3) && log;
    }).catch((err: Error) => assert.fail(`${err.message}: ${JSON.stringify(last)}`));
    assert.ok(Math.max(...await metric('tasker_webhook_oldest_pending_seconds')) > 0.3, 'the oldest pending delivery\'s age');
    // Each task's task.done waits behind its task.created: never tried while that one is pending.
    for (const d of retried) {
      if (d.event === 'task.created') assert.match(d.last_error, /ECONNREFUSED/, JSON.stringify(d));
      else assert.deepEqual([d.event, d.attempt, d.last_error], ['task.done', 0, null]);
      assert.notEqual(d.next_time, null);
    }
    await r.start(port);
    await until('every event after the receiver is back', () => names.every((n) => r.byTask().get(n)?.length === 2));
    await sleep(500);
    assert.ok(r.got.every((g) => g.valid));
    assert.equal(r.got.length, 6);
    assert.equal(new Set(r.got.map((g) => g.id)).size, 6);
    for (const n of names) assert.deepEqual(r.byTask().get(n), ['task.created', 'task.done'], n);
    assert.ok((await deliveries(id)).every((d) => d.status === 'delivered'));
    assert.equal((await call('GET', `/webhooks/${id}`)).json.failing_since, null, 'a success clears the failure record');
    await until('no delivery pending on either instance', async () => Math.max(...await metric('tasker_webhook_oldest_pending_seconds')) === 0);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('retries 500s with growing gaps, sending the same id and body each time', async function () {
    this.timeout(60_000);
    const r = await receiver();
    r.answer = (n) => ({ status: n <= 4 ? 500 : 204 });
    const id = await subscribe(r, ['task.created']);
    await task('five-hundred');
    await until('the fifth attempt', () => r.got.length >= 5);
    await sleep(1000);
    assert.equal(r.got.length, 5, 'delivered on the fifth attempt, then no more');
    assert.ok(r.got.every((g) => g.valid));
    assert.equal(new Set(r.got.map((g) => g.id)).size, 1, 'one webhook-id');
    assert.equal(new Set(r.got.map((g) => g.raw)).size, 1, 'one body');
    const gaps = r.got.slice(1).map((g, i) => g.at - r.got[i].at);
    // retry_base 0.2 s doubled each time, jittered to between half and all of it: 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.8-1.6 s.
    assert.ok(gaps[3] > gaps[0] * 2 && gaps[3] >= 700 && gaps[0] >= 90, JSON.stringify(gaps));
    assert.ok(gaps[2] + gaps[3] > gaps[0] + gaps[1], JSON.stringify(gaps));
    const [d] = await deliveries(id);
    assert.deepEqual([d.status, d.attempt, d.http_status, d.last_error], ['delivered', 5, 204, null]);
    assert.ok(sum(await metric('tasker_webhook_deliveries_total', { outcome: 'retrying' })) >= 4);
    assert.ok(sum(await metric('tasker_webhook_deliveries_total', { outcome: 'delivered' })) >= 1);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('gives up on an answer after api.webhooks.timeout and tries again', async function () {
    this.timeout(60_000);
    const r = await receiver();
    r.answer = (n) => ({ status: n === 1 ? 0 : 200 });
    const id = await subscribe(r, ['task.created']);
    await task('timed-out');
    const [waiting] = await until('the timed-out attempt recorded', async () => {
      const log = await deliveries(id);
      return log[0]?.last_error && log;
    });
    assert.deepEqual([waiting.status, waiting.attempt, waiting.http_status], ['pending', 1, null]);
    assert.match(waiting.last_error, /^no answer within 2 s$/);
    assert.ok(waiting.duration_ms >= 1900 && waiting.duration_ms < 3000, String(waiting.duration_ms));
    await until('the second attempt', () => r.got.length === 2);
    assert.ok(r.got[1].at - r.got[0].at >= 2000);
    assert.equal(r.got[1].id, r.got[0].id);
    await until('delivered', async () => (await deliveries(id))[0].status === 'delivered');
    await call('DELETE', `/webhooks/${id}`);
  });

  it('fails the deliveries of a receiver that never recovers and disables the subscription after api.webhooks.retry_for', async function () {
    this.timeout(60_000);
    const r = await receiver();
    r.answer = () => ({ status: 500 });
    const id = await subscribe(r, ['task.created', 'task.done']);
    await task('never');
    const disabled = await until('the subscription disabled', async () => {
      const w = await call('GET', `/webhooks/${id}`);
      return w.json.enabled === false && w.json;
    }, 30_000);
    assert.match(disabled.disabled_reason, /every delivery failed/);
    const log = await deliveries(id);
    assert.equal(log.length, 2);
    for (const d of log) {
      assert.equal(d.status, 'failed', JSON.stringify(d));
      assert.equal(d.next_time, null);
    }
    const [done, created] = log;
    assert.ok(created.attempt >= 3 && created.http_status === 500 && /answered 500/.test(created.last_error), JSON.stringify(created));
    // Behind task.created until that one failed (at the end of retry_for), then failed with the subscription.
    assert.equal(done.event, 'task.done');
    assert.ok(done.attempt === 0 ? done.last_error === 'the subscription was disabled' : done.attempt <= 2, JSON.stringify(done));
    const seen = r.got.length;
    await task('never-2');
    await h.waitForStatus('worker', 'never-2', ['DONE']);
    await sleep(1000);
    assert.equal(r.got.length, seen, 'a disabled subscription is sent nothing more');
    assert.equal((await deliveries(id)).length, 2);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('keeps an ended delivery in the log for api.webhooks.log_keep, then removes it', async function () {
    this.timeout(60_000);
    const r = await receiver();
    const id = await subscribe(r, ['task.created', 'task.done']);
    await task('pruned');
    await until('both delivered', async () => (await deliveries(id)).filter((d) => d.status === 'delivered').length === 2);
    const kept = await h.query<{ left_s: number }>('SELECT TIMESTAMPDIFF(SECOND, NOW(3), expire_time) AS left_s FROM webhook_delivery WHERE webhook_id = ?', [id]);
    assert.ok(kept.every((k) => Number(k.left_s) > 50 && Number(k.left_s) <= 60), JSON.stringify(kept));
    // As if its time were over: the job (every 6 s with log_keep 60) removes it.
    const [first] = await deliveries(id);
    await h.query('UPDATE webhook_delivery SET expire_time = NOW(3) - INTERVAL 1 SECOND WHERE id = ?', [first.id]);
    await until('the expired delivery removed', async () => (await deliveries(id)).length === 1, 20_000);
    assert.notEqual((await deliveries(id))[0].id, first.id);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('sends a signed test message at once, and redelivers a delivery under the same id and body', async function () {
    this.timeout(60_000);
    const r = await receiver();
    const id = await subscribe(r, ['task.created']);
    const tested = await call('POST', `/webhooks/${id}/test`);
    assert.equal(tested.status, 200, JSON.stringify(tested.json));
    assert.deepEqual([tested.json.ok, tested.json.http_status, tested.json.error], [true, 200, null]);
    assert.equal(r.got.length, 1);
    assert.deepEqual([r.got[0].valid, r.got[0].id, r.got[0].body.type, r.got[0].body.data.webhook], [true, tested.json.message_id, 'webhook.test', id]);
    assert.equal((await deliveries(id)).length, 0, 'a test is not in the log');
    assert.equal((await call('POST', '/webhooks/999999/test')).status, 404);

    await task('again');
    await until('the delivery', () => r.got.length === 2);
    const [d] = await until('it recorded', async () => {
      const log = await deliveries(id);
      return log[0]?.status === 'delivered' && log;
    });
    const again = await call('POST', `/webhooks/${id}/deliveries/${d.id}/redeliver`);
    assert.equal(again.status, 200, JSON.stringify(again.json));
    assert.equal(again.json.status, 'pending');
    await until('the redelivery', () => r.got.length === 3);
    assert.ok(r.got[2].valid);
    assert.equal(r.got[2].id, r.got[1].id, 'the same webhook-id');
    assert.equal(r.got[2].raw, r.got[1].raw, 'the same body');
    const [after] = await until('it recorded', async () => {
      const log = await deliveries(id);
      return log[0]?.status === 'delivered' && log[0].attempt === 2 && log;
    });
    assert.equal(after.id, d.id);
    assert.equal((await call('POST', `/webhooks/${id}/deliveries/999999/redeliver`)).status, 404);
    assert.equal((await call('POST', `/webhooks/${id}/deliveries/x/redeliver`)).status, 404);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('is managed by the CLI: add (the secret once), list, test, deliveries, redeliver, disable, enable, rm', async function () {
    this.timeout(60_000);
    const r = await receiver();
    const bad = await cli(['webhook', 'add', r.url, '--events', 'task.nope']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^tasker: POST \/webhooks: 400 invalid_request: events/);
    const added = await cli(['webhook', 'add', r.url, '--events', 'task.created,task.done', '--types', 'worker', '--selector', '!canary', '--description', 'from the CLI']);
    assert.equal(added.code, 0, added.stderr);
    const made = JSON.parse(added.stdout);
    assert.match(made.secret, /^whsec_/);
    assert.equal(made.selector, '!canary');
    r.secret = made.secret;
    const listed = await cli(['webhook', 'list', '--output', 'table']);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, new RegExp(`${made.id}\\s+${r.url.replace(/[.]/g, '\\.')}\\s+task\\.created,task\\.done\\s+worker\\s+!canary\\s+yes`));
    assert.ok(!listed.stdout.includes(made.secret), 'never the secret again');
    const tested = await cli(['webhook', 'test', String(made.id)]);
    assert.equal(tested.code, 0, tested.stderr);
    assert.equal(JSON.parse(tested.stdout).ok, true);
    const rotated = await cli(['webhook', 'rotate', String(made.id), '--output', 'table']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const fresh = /^(whsec_\S+)$/m.exec(rotated.stdout)?.[1];
    assert.ok(fresh !== undefined && fresh !== made.secret, rotated.stdout);
    // From here on the receiver checks with the new secret only.
    r.secret = fresh;
    await task('by-cli');
    await until('both events', () => r.got.filter((g) => g.body.type !== 'webhook.test').length === 2);
    const log = await until('the log', async () => {
      const shown = await cli(['webhook', 'deliveries', String(made.id)]);
      const page = JSON.parse(shown.stdout);
      return page.deliveries.length === 2 && page.deliveries.every((d: any) => d.status === 'delivered') && page;
    });
    const table = await cli(['webhook', 'deliveries', String(made.id), '--output', 'table']);
    assert.match(table.stdout, /task\.done\s+worker\/by-cli\s+delivered\s+1\s+200/);
    const again = await cli(['webhook', 'redeliver', String(made.id), String(log.deliveries[0].id)]);
    assert.equal(again.code, 0, again.stderr);
    await until('the redelivery', () => r.got.length === 4);
    assert.ok(r.got.every((g) => g.valid));
    assert.equal(JSON.parse((await cli(['webhook', 'disable', String(made.id)])).stdout).enabled, false);
    assert.equal(JSON.parse((await cli(['webhook', 'enable', String(made.id)])).stdout).enabled, true);
    assert.equal((await cli(['webhook', 'rm', String(made.id)])).code, 0);
    const gone = await cli(['webhook', 'test', String(made.id)]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /404/);
  });

  it('signs so that a receiver in Python verifies every delivery by the specification\'s lines', async function () {
    this.timeout(60_000);
    const port = await freePort();
    const made = await call('POST', '/webhooks', { url: `http://127.0.0.1:${port}/py`, events: ['task.created', 'task.done'] });
    assert.equal(made.status, 201);
    const py = h.spawnExternal('python receiver', '/usr/bin/python3',
      [path.resolve(__dirname, '..', '..', '..', 'test', 'endpoints', 'webhook_receiver.py'), String(port), made.json.secret]);
    await py.waitForLog((l) => l.listening === port, 20_000, 'the receiver listening');
    for (const n of ['py-1', 'py-2']) await task(n);
    const got = (): LogLine[] => py.lines.filter((l) => typeof l.id === 'string');
    await until('four deliveries', () => got().length >= 4);
    await sleep(500);
    const lines = got();
    assert.equal(lines.length, 4, JSON.stringify(lines));
    assert.equal(new Set(lines.map((l) => l.id)).size, 4);
    for (const l of lines) {
      assert.equal(l.valid, true, JSON.stringify(l));
      assert.equal(l.tampered_valid, false, 'a changed body does not verify');
      // The standardwebhooks package, when installed, agrees.
      assert.ok(l.package_valid === null || l.package_valid === true, JSON.stringify(l));
    }
    assert.ok((await deliveries(made.json.id)).every((d) => d.status === 'delivered' && d.http_status === 204));
    await py.stop();
    await call('DELETE', `/webhooks/${made.json.id}`);
  });

  it('rotates a secret: for api.webhooks.rotation_overlap deliveries verify with the old secret too, then with the new one only', async function () {
    this.timeout(60_000);
    const r = await receiver();
    const id = await subscribe(r, ['task.created']);
    const old = r.secret;
    assert.equal((await call('GET', `/webhooks/${id}`)).json.previous_secret_until, null);
    const rotated = await call('POST', `/webhooks/${id}/rotate`);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
    assert.match(rotated.json.secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.notEqual(rotated.json.secret, old);
    const overlapEnd = Date.parse(rotated.json.previous_secret_until);
    // api.webhooks.rotation_overlap is 4 s here; the clocks are one machine's.
    assert.ok(Math.abs(overlapEnd - Date.now() - 4000) < 1500, rotated.json.previous_secret_until);
    const shown = await call('GET', `/webhooks/${id}`);
    assert.equal(shown.json.secret, undefined, 'the new secret is shown once');
    assert.equal(shown.json.previous_secret_until, rotated.json.previous_secret_until);
    r.secret = rotated.json.secret;
    const both = (g: Received, secret: string): [boolean, boolean] => [verify(secret, g.headers, g.raw), packageVerify(secret, g.headers, g.raw)];

    await task('rot-during');
    const during = await until('the delivery in the overlap', () => r.got.find((g) => g.body.data.task.identifier === 'rot-during'));
    assert.equal(String(during.headers['webhook-signature']).split(' ').length, 2, 'two signatures');
    assert.deepEqual(both(during, rotated.json.secret), [true, true], 'the new secret verifies');
    assert.deepEqual(both(during, old), [true, true], 'a receiver still holding the old secret verifies');

    await sleep(Math.max(0, overlapEnd - Date.now()) + 500);
    await task('rot-after');
    const later = await until('the delivery after the overlap', () => r.got.find((g) => g.body.data.task.identifier === 'rot-after'));
    assert.equal(String(later.headers['webhook-signature']).split(' ').length, 1, 'one signature');
    assert.deepEqual(both(later, rotated.json.secret), [true, true]);
    assert.deepEqual(both(later, old), [false, false], 'the old secret no longer verifies');
    assert.equal((await call('POST', '/webhooks/999999/rotate')).status, 404);
    assert.equal((await call('POST', '/webhooks/x/rotate')).status, 404);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('does not follow a redirect', async function () {
    this.timeout(30_000);
    const target = await receiver();
    const r = await receiver();
    r.answer = () => ({ status: 307, headers: { location: target.url } });
    const id = await subscribe(r, ['task.created']);
    await task('redirected');
    const [d] = await until('a refused attempt', async () => {
      const log = await deliveries(id);
      return log.length === 1 && log[0].attempt >= 2 && log;
    });
    assert.equal(d.status, 'pending');
    assert.equal(d.http_status, 307);
    assert.match(d.last_error, /redirect \(not followed\)/);
    assert.equal(target.got.length, 0, 'the redirect\'s target got nothing');
    await call('DELETE', `/webhooks/${id}`);
  });

  it('delivers again under the same webhook-id what an API instance SIGKILLed mid-delivery had in hand, once its lease runs out', async function () {
    this.timeout(120_000);
    const r = await receiver();
    r.answer = (n) => ({ status: n === 1 ? 0 : 200 });
    const id = await subscribe(r, ['task.created']);
    await task('killed');
    await until('the first attempt', () => r.got.length === 1);
    await Promise.all([api.stop('SIGKILL'), second.stop('SIGKILL')]);
    const [held] = await h.query<{ status: string; attempt: number }>('SELECT status, attempt FROM webhook_delivery WHERE webhook_id = ?', [id]);
    assert.deepEqual([held.status, Number(held.attempt)], ['pending', 1]);
    api = await h.startApi();
    // The lease: api.webhooks.timeout (2 s) and 30 s.
    await until('the delivery after the restart', () => r.got.length === 2, 60_000);
    assert.ok(r.got.every((g) => g.valid));
    assert.equal(r.got[1].id, r.got[0].id, 'the same webhook-id');
    assert.equal(r.got[1].raw, r.got[0].raw, 'the same body');
    const [d] = await until('it recorded', async () => {
      const log = await deliveries(id);
      return log[0]?.status === 'delivered' && log;
    });
    assert.deepEqual([d.status, d.attempt, d.http_status], ['delivered', 2, 200]);
    await call('DELETE', `/webhooks/${id}`);
  });

  it('delivers to a subscription with a selector only the events of tasks some endpoint of which matches', async function () {
    this.timeout(60_000);
    const web = await h.startManager('web1', ['worker'], { TASKER_LABELS: 'role=web,region=eu' });
    const webs = await receiver();
    const dbs = await receiver();
    const webId = await subscribe(webs, ['task.created', 'task.done'], { selector: 'role=web,region in (eu,us)' });
    const dbId = await subscribe(dbs, ['task.done'], { selector: 'role=db' });
    // By a fact and a label's absence: console1 (no labels, on Linux), not web1.
    const byFact = await receiver();
    const factId = await subscribe(byFact, ['task.done'], { selector: `os=${process.platform},!role` });
    assert.equal((await call('GET', `/webhooks/${webId}`)).json.selector, 'role=web,region in (eu,us)');
    const post = async (identifier: string, endpoints: string[]): Promise<void> => {
      const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      await h.waitForStatus('worker', identifier, ['DONE']);
    };
    await post('sel-web', ['web1']);
    await post('sel-console', ['console1']);
    await post('sel-both', ['console1', 'web1']);
    await until('the web tasks\' events', () => webs.byTask().get('sel-web')?.length === 2 && webs.byTask().get('sel-both')?.length === 2);
    await sleep(1000);
    assert.ok(webs.got.every((g) => g.valid));
    assert.deepEqual([...webs.byTask().keys()].sort(), ['sel-both', 'sel-web'], 'a task none of whose endpoints matches is left out');
    assert.deepEqual(webs.byTask().get('sel-web'), ['task.created', 'task.done']);
    assert.equal(dbs.got.length, 0, 'no endpoint matches role=db');
    await until('the fact-selected tasks', () => byFact.byTask().get('sel-both')?.length === 1);
    assert.deepEqual([...byFact.byTask().keys()].sort(), ['sel-both', 'sel-console'], 'facts are matched too');
    assert.equal((await deliveries(dbId)).length, 0, 'nor is anything written to its outbox');
    // PATCH: a new selector applies to the changes after the answer; a bad one is refused and changes nothing.
    const bad = await call('PATCH', `/webhooks/${dbId}`, { selector: 'role=' + 'x'.repeat(64) });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /^selector: /);
    assert.equal((await call('GET', `/webhooks/${dbId}`)).json.selector, 'role=db');
    const patched = await call('PATCH', `/webhooks/${dbId}`, { selector: '!role' });
    assert.equal(patched.json.selector, '!role');
    await post('sel-after', ['console1']);
    await post('sel-after-web', ['web1']);
    await until('the unlabelled endpoint\'s task', () => dbs.byTask().get('sel-after')?.length === 1);
    await sleep(1000);
    assert.deepEqual([...dbs.byTask().keys()], ['sel-after'], '!role: only the endpoint without a role label');
    assert.ok(dbs.got.every((g) => g.valid));
    // null: every task again.
    assert.equal((await call('PATCH', `/webhooks/${dbId}`, { selector: null })).json.selector, null);
    await post('sel-none', ['web1']);
    await until('a task of any endpoint', () => dbs.byTask().get('sel-none')?.length === 1);
    await web.stop();
    for (const id of [webId, dbId, factId]) await call('DELETE', `/webhooks/${id}`);
  });

  it('POSTs a task\'s end to its own notify URL, signed with api.webhooks.notify_secret, retried like a subscription\'s', async function () {
    this.timeout(90_000);
    const r = await receiver();
    r.secret = NOTIFY_SECRET;
    r.answer = (n) => ({ status: n === 1 ? 500 : 200 });
    const url = `${r.url}?task=notify-1`;
    const made = await h.post('worker', { identifier: 'notify-1', payload: { sleep: 0 }, endpoints: ['console1'], notify: url });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    assert.equal(made.json.notify, url);
    assert.equal((await h.get('worker/notify-1')).json.task.notify, url);
    await until('the notification, after a 500', () => r.got.length >= 2);
    await sleep(1000);
    assert.equal(r.got.length, 2, 'its end only (not its creation), sent again after the 500');
    assert.ok(r.got.every((g) => g.valid), 'signed with api.webhooks.notify_secret');
    assert.equal(r.got[0].id, r.got[1].id, 'under the same webhook-id');
    assert.equal(r.got[1].raw, r.got[0].raw);
    assert.equal(r.got[1].path, '/hook?task=notify-1');
    assert.equal(r.got[1].body.type, 'task.done');
    assert.deepEqual([r.got[1].body.data.task.identifier, r.got[1].body.data.task.status], ['notify-1', 'DONE']);
    // Its delivery log: the tasks' own notifications, as `notify`; sent again on request, under the same webhook-id.
    const log = await until('the delivered record', async () => {
      const page = (await call('GET', '/webhooks/notify/deliveries')).json as { deliveries: { id: number; message_id: string; status: string; attempt: number; http_status: number; task: { identifier: string } }[] };
      const d = page.deliveries.find((x) => x.task.identifier === 'notify-1');
      return d?.status === 'delivered' ? d : undefined;
    });
    assert.deepEqual([log.attempt, log.http_status, log.message_id], [2, 200, r.got[0].id]);
    const again = await call('POST', `/webhooks/notify/deliveries/${log.id}/redeliver`);
    assert.equal(again.status, 200, JSON.stringify(again.json));
    await until('the redelivery', () => r.got.length === 3);
    assert.deepEqual([r.got[2].id, r.got[2].valid], [r.got[0].id, true]);
    const listed = await cli(['webhook', 'deliveries', 'notify']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /notify-1/);
    assert.equal((await call('GET', '/webhooks/notifyx/deliveries')).status, 404);
    assert.equal((await call('POST', '/webhooks/notify/deliveries/999999999/redeliver')).status, 404);
    // A cancelled task is an end too.
    r.got.length = 0;
    r.answer = () => ({ status: 200 });
    const waiting = await h.post('worker', { identifier: 'notify-2', payload: {}, endpoints: ['nobody-here'], allow_unknown_endpoints: true, notify: r.url });
    assert.equal(waiting.status, 201, JSON.stringify(waiting.json));
    assert.equal((await call('POST', '/worker/notify-2/cancel')).status, 200);
    await until('the cancellation', () => r.got.length === 1);
    assert.deepEqual([r.got[0].body.type, r.got[0].valid], ['task.cancelled', true]);
    // From the CLI: tasker send --notify.
    const sent = await cli(['send', 'worker', '--identifier', 'notify-cli', '--payload', '{"sleep": 0}', '--endpoints', 'console1', '--notify', r.url]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(JSON.parse(sent.stdout).notify, r.url);
    await until('the CLI task\'s notification', () => r.got.some((g) => g.body.data.task.identifier === 'notify-cli'));
    r.got.length = 1;
    // A task without notify is not announced; a subscription's log does not hold the task's notifications.
    await task('notify-none');
    await h.waitForStatus('worker', 'notify-none', ['DONE']);
    assert.equal((await h.get('worker/notify-none')).json.task.notify, null);
    await sleep(1000);
    assert.equal(r.got.length, 1);
    // Bad URLs are refused naming the field, and store nothing.
    for (const [notify, why] of [['ftp://x.example.com/', /^notify: must be https/], ['https://u:p@x.example.com/', /^notify: must not carry/], ['', /notify/]] as const) {
      const res = await h.post('worker', { identifier: 'notify-bad', payload: {}, endpoints: ['console1'], notify });
      assert.equal(res.status, 400, notify);
      assert.match(res.json.error.message, why);
    }
    assert.equal((await h.get('worker/notify-bad')).status, 404);
    // Where it is not allowed, or nothing could sign it: a 400 naming notify.
    const port = await freePort();
    for (const [env, why] of [[{ TASKER_API__WEBHOOKS__ALLOW_PER_TASK_URLS: 'false' }, /^notify: .*api\.webhooks\.allow_per_task_urls/],
      [{ TASKER_API__WEBHOOKS__NOTIFY_SECRET: '' }, /^notify: api\.webhooks\.notify_secret is not set/]] as const) {
      const other = await h.startApi(port, env);
      const res = await h.post('worker', { identifier: 'notify-off', payload: {}, endpoints: ['console1'], notify: r.url }, {}, port);
      assert.equal(res.status, 400, JSON.stringify(res.json));
      assert.match(res.json.error.message, why);
      await other.stop();
    }
    assert.equal((await h.get('worker/notify-off')).status, 404);
  });

  it('refuses private and loopback addresses, also behind a name, when api.webhooks.allow_private is false', async function () {
    this.timeout(120_000);
    await api.stop();
    api = await h.startApi(undefined, { TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'false' });
    const r = await receiver();
    const byAddress = await subscribe(r, ['task.created']);
    const byName = await subscribe(r, ['task.created'], {}, `http://localhost:${r.port}/hook`);
    await task('private');
    for (const [id, why] of [[byAddress, /127\.0\.0\.1 is a private, loopback or link-local address/], [byName, /localhost resolves to (127\.0\.0\.1|::1), a private/]] as const) {
      const [d] = await until('a refused attempt', async () => {
        const log = await deliveries(id);
        return log.length === 1 && log[0].attempt >= 1 && log[0].last_error !== null && log;
      });
      assert.equal(d.status, 'pending');
      assert.equal(d.http_status, null);
      assert.match(d.last_error, why);
    }
    const tested = await call('POST', `/webhooks/${byName}/test`);
    assert.deepEqual([tested.json.ok, tested.json.http_status], [false, null]);
    assert.match(tested.json.error, /private/);
    assert.equal(r.got.length, 0, 'the receiver got nothing');
  });
});

/**
 * `endpoint.stale`: two API instances, endpoints heartbeating every 0.5 s and stale after 3 s; an endpoint
 * stopped is announced once per silence (not once per instance or per job run), again after it came back and
 * fell silent anew, and never to a subscription that does not want it.
 */
describe('webhooks: endpoint.stale (RabbitMQ + MariaDB)', function () {
  const h = new Harness({
    env: {
      TASKER_API__WEBHOOKS__ALLOW_HTTP: 'true', TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'true', TASKER_API__WEBHOOKS__INTERVAL: '0.1',
      TASKER_API__ENDPOINT_STALE_AFTER: '3', TASKER_MANAGER__HEARTBEAT_INTERVAL: '0.5',
    },
  });
  const stale = new Receiver();
  const other = new Receiver();
  /** Wants endpoint.stale, but only of endpoints labelled role=db: these have no labels. */
  const elsewhere = new Receiver();

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${h.baseUrl}${path}`, {
      method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const waitFor = async (what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await fn())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  const registered = (name: string) => waitFor(`${name} registered`, async () => (await call('GET', '/endpoints')).json.endpoints.some((e: any) => e.name === name));
  const staleOf = (name: string): Received[] => stale.got.filter((g) => g.body.data.endpoint.name === name);

  before(async function () {
    await h.setup(this);
    await h.startApi();
    await h.startApi(await freePort());
    await stale.start();
    await other.start();
    await elsewhere.start();
    // The one that gets them has a selector too: matched against the endpoint's labels (none: `!role` holds).
    for (const [r, events, selector] of [[stale, ['endpoint.stale'], '!role'], [other, ['task.done'], null], [elsewhere, ['endpoint.stale'], 'role=db']] as const) {
      const made = await call('POST', '/webhooks', { url: r.url, events, selector });
      assert.equal(made.status, 201, JSON.stringify(made.json));
      r.secret = made.json.secret;
    }
  });

  after(async function () {
    await stale.stop();
    await other.stop();
    await elsewhere.stop();
    await h.teardown();
  });

  it('announces an endpoint silent for api.endpoint_stale_after once per silence, to the subscriptions that want it', async function () {
    this.timeout(90_000);
    await h.startManager('alive1', ['worker']);
    let quiet = await h.startManager('quiet1', ['worker', 'backup']);
    await registered('alive1');
    await registered('quiet1');
    await quiet.stop();
    const stoppedAt = Date.now();
    await waitFor('the first endpoint.stale', () => staleOf('quiet1').length === 1);
    assert.ok(Date.now() - stoppedAt > 2000, 'not before api.endpoint_stale_after');
    // Many runs of the job on both instances later: still one.
    await sleep(3000);
    assert.equal(staleOf('quiet1').length, 1, 'once per silence');
    assert.equal(staleOf('alive1').length, 0, 'a live endpoint is not announced');
    const first = staleOf('quiet1')[0];
    assert.ok(first.valid);
    assert.equal(first.body.type, 'endpoint.stale');
    assert.deepEqual([first.body.data.endpoint.task_types, first.body.data.endpoint.stale_after], [['backup', 'worker'], 3]);
    const listed = (await call('GET', '/endpoints')).json.endpoints.find((e: any) => e.name === 'quiet1');
    assert.equal(listed.stale, true);
    assert.equal(first.body.data.endpoint.last_heartbeat, listed.last_heartbeat);
    assert.equal(other.got.length, 0, 'a subscription without endpoint.stale gets nothing');
    assert.equal(elsewhere.got.length, 0, 'nor one whose selector the endpoint does not match');

    const id = (await call('GET', '/webhooks')).json.webhooks.find((w: any) => w.events.includes('endpoint.stale') && w.selector === '!role').id;
    const log = (await call('GET', `/webhooks/${id}/deliveries`)).json.deliveries;
    assert.equal(log.length, 1);
    assert.deepEqual([log[0].event, log[0].task, log[0].endpoint, log[0].status, log[0].message_id], ['endpoint.stale', null, 'quiet1', 'delivered', first.id]);

    // Back, then silent again: a new silence, announced once more.
    quiet = await h.startManager('quiet1', ['worker', 'backup']);
    await waitFor('quiet1 heard again', async () => (await call('GET', '/endpoints')).json.endpoints.find((e: any) => e.name === 'quiet1').stale === false);
    await quiet.stop();
    await waitFor('the second endpoint.stale', () => staleOf('quiet1').length === 2);
    await sleep(2000);
    assert.equal(staleOf('quiet1').length, 2);
    const second = staleOf('quiet1')[1];
    assert.ok(second.valid);
    assert.notEqual(second.id, first.id);
    assert.ok(Date.parse(second.body.data.endpoint.last_heartbeat) > Date.parse(first.body.data.endpoint.last_heartbeat));
    const [notice] = await h.query<{ heartbeat: unknown }>('SELECT heartbeat FROM endpoint_stale_notice WHERE name = ?', ['quiet1']);
    assert.equal(readTime(notice.heartbeat).toISOString(), second.body.data.endpoint.last_heartbeat);
  });
});

/** The same outbox and delivery job on SQLite, in the one process of the standalone mode. */
describe('webhooks (standalone, SQLite)', function () {
  const h = new Harness({
    backend: 'standalone',
    env: {
      TASKER_API__WEBHOOKS__ALLOW_HTTP: 'true', TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'true', TASKER_API__WEBHOOKS__INTERVAL: '0.1', TASKER_API__WEBHOOKS__RETRY_BASE: '0.2',
      // The endpoint.stale job every 2 s.
      TASKER_API__ENDPOINT_STALE_AFTER: '20',
      TASKER_API__WEBHOOKS__ALLOW_PER_TASK_URLS: 'true', TASKER_API__WEBHOOKS__NOTIFY_SECRET: NOTIFY_SECRET,
    },
  });
  const r = new Receiver();
  /** A task's own notify URL. */
  const own = new Receiver();

  before(async function () {
    await h.setup(this);
    await h.startAllInOne([{ name: 'console1', task_types: ['worker'] }]);
    await r.start();
    await own.start();
    own.secret = NOTIFY_SECRET;
  });

  after(async function () {
    await r.stop();
    await own.stop();
    await h.teardown();
  });

  it('delivers each event once, signed and in order per task, after a receiver\'s 500', async function () {
    this.timeout(60_000);
    r.answer = (n) => ({ status: n === 1 ? 500 : 200 });
    const made = await fetch(`${h.baseUrl}/webhooks`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: r.url, events: ['task.created', 'task.done'] }),
    });
    assert.equal(made.status, 201);
    r.secret = ((await made.json()) as { secret: string }).secret;
    for (const n of ['sa-1', 'sa-2']) assert.equal((await h.post('worker', { identifier: n, payload: { sleep: 0 }, endpoints: ['console1'] })).status, 201);
    const deadline = Date.now() + 30_000;
    while (r.got.length < 5) {
      if (Date.now() > deadline) assert.fail(`not every event arrived: ${JSON.stringify([...r.byTask()])}`);
      await sleep(100);
    }
    await sleep(500);
    assert.ok(r.got.every((g) => g.valid));
    assert.equal(r.got.length, 5, 'four events, one of them twice (after its 500)');
    assert.equal(new Set(r.got.slice(1).map((g) => g.id)).size, 4);
    for (const n of ['sa-1', 'sa-2']) assert.deepEqual([...new Set(r.byTask().get(n))], ['task.created', 'task.done']);
    // The endpoint.stale job's statements run on SQLite too (its endpoints are live: it announces nothing).
    const jobRuns = async (result: string): Promise<number> =>
      valueOf(parseMetrics(await (await fetch(`${h.baseUrl}/metrics`)).text()), 'tasker_job_runs_total', { job: 'endpoint-stale', result });
    const until = Date.now() + 10_000;
    while (await jobRuns('ok') === 0 && Date.now() < until) await sleep(200);
    assert.ok(await jobRuns('ok') > 0);
    assert.equal(await jobRuns('error'), 0);
  });

  it('sends a task\'s end to its own notify URL and filters by a selector, on SQLite too', async function () {
    this.timeout(60_000);
    const picky = new Receiver();
    await picky.start();
    try {
      // console1 has no labels: `role=db` matches none of its tasks, `!role` all of them.
      const made: number[] = [];
      for (const selector of ['role=db', '!role']) {
        const res = await fetch(`${h.baseUrl}/webhooks`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: `${picky.url}?s=${encodeURIComponent(selector)}`, events: ['task.done'], selector }),
        });
        assert.equal(res.status, 201);
        const json = (await res.json()) as { id: number; secret: string };
        made.push(json.id);
        picky.secret = json.secret;
      }
      const res = await h.post('worker', { identifier: 'sa-notify', payload: { sleep: 0 }, endpoints: ['console1'], notify: own.url });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      const deadline = Date.now() + 30_000;
      while (own.got.length < 1 || picky.got.length < 1) {
        if (Date.now() > deadline) assert.fail('the notification or the selected delivery did not arrive');
        await sleep(100);
      }
      await sleep(500);
      assert.deepEqual(own.got.map((g) => [g.body.type, g.body.data.task.identifier, g.valid]), [['task.done', 'sa-notify', true]]);
      assert.deepEqual(picky.got.map((g) => [g.path, g.body.data.task.identifier, g.valid]), [['/hook?s=!role', 'sa-notify', true]]);
      for (const id of made) await fetch(`${h.baseUrl}/webhooks/${id}`, { method: 'DELETE' });
    } finally {
      await picky.stop();
    }
  });
});
