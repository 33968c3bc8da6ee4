import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../config/loader';
import { RabbitAdmin } from '../../api/rabbit-admin';
import { Harness } from '../support/harness';

const TASKER = path.join(projectRoot(), 'dist', 'cli', 'tasker.js');
const REFUSE = { TASKER_API__UNKNOWN_ENDPOINTS: 'refuse' };

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
      const res = await h.post('worker', { identifier: `broadcast-${i}` });
      assert.equal(res.status, 201, `broadcast ${i}: ${JSON.stringify(res.json)}`);
      await h.waitForStatus('worker', `broadcast-${i}`, ['DONE']);
    }
  });
});
