import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../config/loader';
import { RabbitAdmin } from '../../api/rabbit-admin';
import { freePort, Harness } from '../support/harness';
import { until } from '../support/until';

const TASKER = path.join(projectRoot(), 'dist', 'cli', 'tasker.js');
const REFUSE = { TASKER_API__UNKNOWN_ENDPOINTS: 'refuse' };



async function del(h: Harness, pathname: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${h.baseUrl}/${pathname}`, { method: 'DELETE' });
  return { status: res.status, json: await res.json() };
}

async function registered(h: Harness, name: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const page = await h.get('endpoints');
    if (page.json.endpoints.some((e: { name: string }) => e.name === name)) return;
    if (Date.now() > deadline) throw new Error(`${name} never registered: ${JSON.stringify(page.json)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The vhost's queue names, from the management API. */
async function queueNames(h: Harness): Promise<string[]> {
  const { status, json } = await new RabbitAdmin(h.config.rabbitmq).request('GET', `/queues/${encodeURIComponent(h.config.manager.message_queue.virtual_host)}?columns=name`);
  assert.equal(status, 200);
  return (json as { name: string }[]).map((q) => q.name);
}

describe('endpoint inventory (RabbitMQ + MariaDB)', function () {
  const h = new Harness({ env: REFUSE });

  before(async function () {
    await h.setup(this);
    await h.startApi();
    await h.startManager('console1', ['worker']);
    await registered(h, 'console1');
  });

  after(async function () {
    await h.teardown();
  });

  it('refuses a task listing names that never registered, naming each, and stores and declares nothing', async function () {
    const res = await h.post('worker', { identifier: 'typo', endpoints: ['console1', 'consoel2', 'zz9'] });
    assert.equal(res.status, 422);
    assert.equal(res.json.error.code, 'unknown_endpoints');
    assert.match(res.json.error.message, /consoel2, zz9/);
    assert.doesNotMatch(res.json.error.message, /console1/);
    assert.deepEqual(await h.query(`SELECT id FROM task WHERE identifier = 'typo'`), []);
    const queues = await queueNames(h);
    assert.ok(queues.includes('tasker.worker.console1'), queues.join(' '));
    assert.ok(!queues.some((q) => q.endsWith('.consoel2') || q.endsWith('.zz9')), queues.join(' '));
  });

  it('accepts the names of registered endpoints, and unknown ones when the request allows them (their queue keeps the task)', async function () {
    assert.equal((await h.post('worker', { identifier: 'known', endpoints: ['console1'] })).status, 201);
    const res = await h.post('worker', { identifier: 'later', endpoints: ['console1', 'consoel2'], allow_unknown_endpoints: true });
    assert.equal(res.status, 201);
    assert.ok((await queueNames(h)).includes('tasker.worker.consoel2'));
    // A repeat without the flag is still the idempotent repeat it is.
    assert.equal((await h.post('worker', { identifier: 'later', endpoints: ['console1', 'consoel2'] })).status, 200);
  });

  it('knows a name added with `npm run endpoint -- add` before it ever registered', async function () {
    assert.equal((await h.post('worker', { identifier: 'pre-add', endpoints: ['added1'] })).status, 422);
    await h.addEndpointUser('added1', 'secret-added1');
    assert.equal((await h.post('worker', { identifier: 'post-add', endpoints: ['added1'] })).status, 201);
  });

  it('tasker send says which names are unknown, and sends to them with --allow-unknown-endpoints', async function () {
    const cli = (args: string[]) => promisify(execFile)(process.execPath, [TASKER, ...args], { env: { PATH: process.env.PATH, TASKER_URL: h.baseUrl } })
      .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (err: { code: number; stdout: string; stderr: string }) => err);
    const refused = await cli(['send', 'worker', '--identifier', 'cli-typo', '--endpoints', 'console1,consoel7']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /422 unknown_endpoints: unknown endpoints \(never registered, not added\): consoel7;/);
    const allowed = await cli(['send', 'worker', '--identifier', 'cli-later', '--endpoints', 'console1,consoel7', '--allow-unknown-endpoints', '-o', 'json']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.deepEqual(JSON.parse(allowed.stdout).endpoints, ['console1', 'consoel7']);
  });

  it('refuses a task listing an endpoint registered for other task types only, naming it, unless allowed', async function () {
    // console1 serves worker only.
    const res = await h.post('backup', { identifier: 'wrong-type', endpoints: ['console1'] });
    assert.equal(res.status, 422);
    assert.equal(res.json.error.code, 'endpoints_not_serving');
    assert.match(res.json.error.message, /do not serve task type 'backup' \(registered for other types only\): console1;/);
    assert.deepEqual(await h.query(`SELECT id FROM task WHERE identifier = 'wrong-type'`), []);
    assert.ok(!(await queueNames(h)).includes('tasker.backup.console1'));
    const allowed = await h.post('backup', { identifier: 'wrong-type', endpoints: ['console1'], allow_unknown_endpoints: true });
    assert.equal(allowed.status, 201);
    // An API starting with a fleet that serves no backup says so, once, and nothing of worker.
    const second = await h.startApi(await freePort());
    const warned = await second.waitForLog((l) => l.level === 'warn' && l.taskType === 'backup', 10_000, 'the unserved type warning');
    assert.match(String(warned.msg), /task type 'backup' is served by no registered endpoint/);
    assert.ok(!second.lines.some((l) => l.taskType === 'worker'), 'worker is served');
    await second.stop();
  });

  it('refuses a flag that is not a boolean with 400, storing nothing', async function () {
    const res = await h.post('worker', { identifier: 'bad-flag', endpoints: ['console1'], allow_unknown_endpoints: 'yes' });
    assert.equal(res.status, 400);
    assert.deepEqual(await h.query(`SELECT id FROM task WHERE identifier = 'bad-flag'`), []);
  });
});

describe('endpoint inventory (standalone)', function () {
  const BACKLOG = 20;
  const h = new Harness({ backend: 'standalone', env: { ...REFUSE, TASKER_MANAGER__IN_PROCESS_BACKLOG: String(BACKLOG) } });

  before(async function () {
    await h.setup(this);
    await h.startAllInOne([{ name: 'console1', task_types: ['worker'] }, { name: 'console2', task_types: ['worker'] }]);
  });

  after(async function () {
    await h.teardown();
  });

  it('refuses a typo, so that broadcasts keep being accepted past the in-process backlog', async function () {
    // The in-process managers are known from the start, before their registration is stored.
    assert.equal((await h.post('worker', { identifier: 'first', endpoints: ['console1', 'console2'] })).status, 201);
    const typo = await h.post('worker', { identifier: 'typo', endpoints: ['console1', 'consoel2'] });
    assert.equal(typo.status, 422);
    assert.equal(typo.json.error.code, 'unknown_endpoints');
    // Without the check, the typo's queue, bound to the fanout and never read, fills after BACKLOG broadcasts.
    for (let i = 0; i < BACKLOG + 5; i++) {
      const res = await h.post('worker', { identifier: `broadcast-${i}`, payload: { sleep: 0 } });
      assert.equal(res.status, 201, `broadcast ${i}: ${JSON.stringify(res.json)}`);
      await h.waitForStatus('worker', `broadcast-${i}`, ['DONE']);
    }
  });

  it('removing an allowed unknown endpoint deletes its in-process queue, and broadcasts are taken again', async function () {
    const allowed = await h.post('worker', { identifier: 'allowed-typo', payload: { sleep: 0 }, endpoints: ['console1', 'consoel3'], allow_unknown_endpoints: true });
    assert.equal(allowed.status, 201);
    let refused = null;
    for (let i = 0; i < BACKLOG + 2 && !refused; i++) {
      const res = await h.post('worker', { identifier: `fill-${i}`, payload: { sleep: 0 } });
      if (res.status === 503) refused = res;
      else await h.waitForStatus('worker', `fill-${i}`, ['DONE']);
    }
    assert.equal(refused?.json.error.code, 'backlog_full', 'the unread queue filled the backlog');
    const removed = await del(h, 'endpoints/consoel3');
    assert.equal(removed.status, 200, JSON.stringify(removed.json));
    assert.deepEqual(removed.json, { name: 'consoel3', cancelled: 1 });
    assert.equal((await h.post('worker', { identifier: 'after-remove', payload: { sleep: 0 } })).status, 201);
  });
});

describe('endpoint removal and staleness (RabbitMQ + MariaDB)', function () {
  const h = new Harness({ env: { ...REFUSE, TASKER_API__ENDPOINT_STALE_AFTER: '4' }, waitTimeout: 600 });
  let gone: Awaited<ReturnType<Harness['startManager']>>;

  before(async function () {
    await h.setup(this);
    await h.startApi();
    await h.startManager('busy1', ['worker']);
    gone = await h.startManager('gone1', ['worker']);
    await registered(h, 'busy1');
    await registered(h, 'gone1');
  });

  after(async function () {
    await h.teardown();
  });

  const responseOf = async (identifier: string, endpoint: string): Promise<any> =>
    (await h.get(`worker/${identifier}`)).json.taskResponseList.find((r: any) => r.endpoint === endpoint);

  it('shows an endpoint silent for api.endpoint_stale_after as stale', async function () {
    await gone.stop();
    const listed = await until('gone1 stale', async () => {
      const { json } = await h.get('endpoints');
      const byName = new Map(json.endpoints.map((e: any) => [e.name, e]));
      return (byName.get('gone1') as any)?.stale === true ? byName : null;
    });
    assert.equal((listed.get('busy1') as any).stale, false, JSON.stringify([...listed.values()]));
    assert.equal((listed.get('gone1') as any).alive, false);
  });

  it('DELETE /endpoints/<name> cancels its open responses (history says why), deletes its queues and forgets the name', async function () {
    assert.equal((await h.post('worker', { identifier: 'for-gone', payload: { sleep: 0 }, endpoints: ['gone1', 'busy1'] })).status, 201);
    await until('busy1 done', async () => (await responseOf('for-gone', 'busy1')).state === 'succeeded');
    assert.ok((await queueNames(h)).includes('tasker.worker.gone1'));

    const res = await del(h, 'endpoints/gone1');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json, { name: 'gone1', cancelled: 1 });
    assert.equal((await responseOf('for-gone', 'gone1')).state, 'cancelled');
    const events = (await h.get('worker/for-gone/events')).json.events;
    const removed = events.find((e: any) => e.kind === 'removed');
    assert.ok(removed, JSON.stringify(events));
    assert.deepEqual(removed.detail.endpoints.map((x: any) => x.endpoint), ['gone1']);
    assert.equal(removed.actor, null, 'api.auth is off: no token to name');
    assert.ok(!(await queueNames(h)).includes('tasker.worker.gone1'));
    assert.ok(!(await h.get('endpoints')).json.endpoints.some((e: any) => e.name === 'gone1'));
    const again = await h.post('worker', { identifier: 'after-removal', endpoints: ['gone1'] });
    assert.equal(again.status, 422);
    assert.equal(again.json.error.code, 'unknown_endpoints');
    assert.equal((await del(h, 'endpoints/nosuch1')).status, 404);
  });

  it('refuses to remove an endpoint running a task (409, nothing changed) unless forced', async function () {
    assert.equal((await h.post('worker', { identifier: 'long', payload: { sleep: 60 }, endpoints: ['busy1'] })).status, 201);
    await until('busy1 running', async () => (await responseOf('long', 'busy1')).state === 'running');
    const refused = await del(h, 'endpoints/busy1');
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error.code, 'endpoint_running');
    assert.equal((await responseOf('long', 'busy1')).state, 'running');
    assert.ok((await queueNames(h)).includes('tasker.worker.busy1'));
    assert.ok((await h.get('endpoints')).json.endpoints.some((e: any) => e.name === 'busy1'));
    assert.equal((await del(h, 'endpoints/busy1?force=maybe')).status, 400);

    const forced = await del(h, 'endpoints/busy1?force=true');
    assert.equal(forced.status, 200, JSON.stringify(forced.json));
    assert.equal(forced.json.cancelled, 1);
    const events = (await h.get('worker/long/events')).json.events;
    assert.ok(events.some((e: any) => e.kind === 'removed' && e.detail.endpoints[0].endpoint === 'busy1'), JSON.stringify(events));
    // Told to abort, the handler stops within moments; what it then reports is kept, as after a cancel.
    const after = await until('the run over', async () => { const r = await responseOf('long', 'busy1'); return r.state !== 'running' && r; }, 10_000);
    assert.ok(['cancelled', 'succeeded', 'failed'].includes(after.state), JSON.stringify(after));
  });

  it('`npm run endpoint -- remove` removes an added endpoint with its queue and open responses', async function () {
    await h.addEndpointUser('scripted1', 'secret-scripted1');
    assert.equal((await h.post('worker', { identifier: 'for-scripted', endpoints: ['scripted1'] })).status, 201);
    assert.ok((await queueNames(h)).includes('tasker.worker.scripted1'));
    const { code, output } = await h.runScript('endpoint.js', ['remove', 'scripted1']);
    assert.equal(code, 0, output);
    assert.match(output, /endpoint 'scripted1' removed: 1 open responses cancelled/);
    assert.equal((await responseOf('for-scripted', 'scripted1')).state, 'cancelled');
    assert.ok(!(await queueNames(h)).includes('tasker.worker.scripted1'));
    assert.equal((await h.post('worker', { identifier: 'after-script', endpoints: ['scripted1'] })).status, 422);
  });
});

describe('forgetting silent endpoints (RabbitMQ + MariaDB)', function () {
  const h = new Harness({ env: { ...REFUSE, TASKER_API__ENDPOINT_FORGET_AFTER: '2' } });

  before(async function () {
    await h.setup(this);
    await h.startApi();
  });

  after(async function () {
    await h.teardown();
  });

  it('removes an endpoint silent for api.endpoint_forget_after, with its queue, and keeps a live one', async function () {
    const silent = await h.startManager('silent1', ['worker']);
    await h.startManager('live1', ['worker']);
    await registered(h, 'silent1');
    await registered(h, 'live1');
    await silent.stop();
    await until('silent1 forgotten', async () => !(await h.get('endpoints')).json.endpoints.some((e: any) => e.name === 'silent1'));
    const queues = await queueNames(h);
    assert.ok(!queues.includes('tasker.worker.silent1'), queues.join(' '));
    assert.ok(queues.includes('tasker.worker.live1'));
    assert.ok((await h.get('endpoints')).json.endpoints.some((e: any) => e.name === 'live1'));
  });
});
