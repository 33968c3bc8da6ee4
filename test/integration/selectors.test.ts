import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { packageVersion, projectRoot } from '../../config/loader';
import { RabbitAdmin } from '../../api/rabbit-admin';
import { Harness, Proc } from '../support/harness';
import { until as untilWithin } from '../support/until';

const TASKER = path.join(projectRoot(), 'dist', 'cli', 'tasker.js');
/** Low, so that a stopped manager turns stale within the test; high enough that a loaded machine's late heartbeat does not. */
const STALE_AFTER_S = 6;


/** Selector suites wait longer: twelve managers start and go stale on two cores. */
const until = <T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> => untilWithin(what, probe, timeoutMs);

/** Twelve endpoints across roles and regions; `how` says whether a manager gets its labels from TASKER_LABELS or --label. */
const FLEET: { name: string; labels: Record<string, string>; how: 'env' | 'flag' }[] = [
  { name: 'web-eu-1', labels: { role: 'web', region: 'eu' }, how: 'env' },
  { name: 'web-eu-2', labels: { role: 'web', region: 'eu' }, how: 'flag' },
  { name: 'web-eu-3', labels: { role: 'web', region: 'eu', canary: 'true' }, how: 'env' },
  { name: 'web-us-1', labels: { role: 'web', region: 'us' }, how: 'flag' },
  { name: 'web-us-2', labels: { role: 'web', region: 'us' }, how: 'env' },
  { name: 'web-us-3', labels: { role: 'web', region: 'us' }, how: 'flag' },
  { name: 'db-eu-1', labels: { role: 'db', region: 'eu', tier: 'primary' }, how: 'env' },
  { name: 'db-eu-2', labels: { role: 'db', region: 'eu', tier: 'replica' }, how: 'flag' },
  { name: 'db-us-1', labels: { role: 'db', region: 'us', tier: 'primary' }, how: 'env' },
  { name: 'db-us-2', labels: { role: 'db', region: 'us', tier: 'replica' }, how: 'flag' },
  { name: 'cache-ap-1', labels: { role: 'cache', region: 'ap' }, how: 'env' },
  { name: 'cache-ap-2', labels: { role: 'cache', region: 'ap' }, how: 'flag' },
];
const NAMES = FLEET.map((e) => e.name).sort();
const names = (filter: (e: (typeof FLEET)[number]) => boolean): string[] => FLEET.filter(filter).map((e) => e.name).sort();
const labelList = (labels: Record<string, string>): string => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');

async function queueNames(h: Harness): Promise<string[]> {
  const { status, json } = await new RabbitAdmin(h.config.rabbitmq).request('GET', `/queues/${encodeURIComponent(h.config.manager.message_queue.virtual_host)}?columns=name`);
  assert.equal(status, 200);
  return (json as { name: string }[]).map((q) => q.name);
}

async function taskCount(h: Harness): Promise<number> {
  return Number((await h.query<{ n: number }>('SELECT COUNT(*) AS n FROM task'))[0].n);
}

function cli(h: Harness, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [TASKER, ...args], { env: { PATH: process.env.PATH, TASKER_URL: h.baseUrl, COLUMNS: '250' } })
    .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (err: { code: number; stdout: string; stderr: string }) => err);
}

describe('labels and selectors (RabbitMQ + MariaDB, 12 managers)', function () {
  const h = new Harness({ env: { TASKER_API__UNKNOWN_ENDPOINTS: 'refuse', TASKER_API__ENDPOINT_STALE_AFTER: String(STALE_AFTER_S) } });
  const managers = new Map<string, Proc>();
  let startMs = 0;

  before(async function () {
    this.timeout(300_000);
    await h.setup(this);
    await h.startApi();
    const t0 = Date.now();
    // All at once: one after another, twelve processes take minutes on two cores.
    await Promise.all(FLEET.map(async (e) => {
      const p = e.how === 'env'
        ? await h.startManager(e.name, ['worker'], { TASKER_LABELS: labelList(e.labels) })
        : await h.startManager(e.name, ['worker'], {}, Object.entries(e.labels).map(([k, v]) => `--label=${k}=${v}`));
      managers.set(e.name, p);
    }));
    await until('all twelve registered with their labels', async () => {
      const listed = (await h.get('endpoints')).json.endpoints as { name: string; labels: Record<string, string> }[];
      return listed.length === FLEET.length && listed.every((e) => Object.keys(e.labels).length > 0);
    }, 60_000);
    startMs = Date.now() - t0;
  });

  after(async function () {
    await h.teardown();
  });

  it('shows each endpoint\'s labels and the facts its manager reported in GET /endpoints', async function () {
    this.test!.title += ` (12 managers ready in ${(startMs / 1000).toFixed(1)} s)`;
    const { json } = await h.get('endpoints');
    assert.deepEqual(json.endpoints.map((e: any) => e.name), NAMES);
    for (const e of FLEET) {
      const shown = json.endpoints.find((x: any) => x.name === e.name);
      assert.deepEqual(shown.labels, e.labels, e.name);
      assert.deepEqual(shown.facts, {
        hostname: hostname(), os: process.platform, arch: process.arch, version: packageVersion(), task_types: ['worker'], handler_kinds: ['module'],
      }, e.name);
    }
    assert.equal(json.count, undefined, 'count comes with a selector only');
  });

  it('lists the endpoints a selector matches, with their count; labels and facts alike', async function () {
    const web = await h.get(`endpoints?selector=${encodeURIComponent('role=web,region=eu')}`);
    assert.equal(web.status, 200);
    assert.deepEqual(web.json.endpoints.map((e: any) => e.name), ['web-eu-1', 'web-eu-2', 'web-eu-3']);
    assert.equal(web.json.count, 3);
    const notin = await h.get(`endpoints?selector=${encodeURIComponent('region notin (eu,us),!canary')}`);
    assert.deepEqual(notin.json.endpoints.map((e: any) => e.name), ['cache-ap-1', 'cache-ap-2']);
    const fact = await h.get(`endpoints?selector=${encodeURIComponent(`os=${process.platform},tier`)}`);
    assert.deepEqual(fact.json.endpoints.map((e: any) => e.name), names((e) => e.labels.tier !== undefined));
    const otherOs = await h.get(`endpoints?selector=${encodeURIComponent('os=plan9')}`);
    assert.deepEqual([otherOs.json.count, otherOs.json.endpoints], [0, []]);
    // Paged: the count is of every match, the pages follow one another.
    const first = await h.get(`endpoints?selector=role%3Dweb&limit=4`);
    assert.equal(first.json.count, 6);
    assert.equal(first.json.endpoints.length, 4);
    const second = await h.get(`endpoints?selector=role%3Dweb&limit=4&cursor=${first.json.next_cursor}`);
    assert.deepEqual([...first.json.endpoints, ...second.json.endpoints].map((e: any) => e.name), names((e) => e.labels.role === 'web'));
    assert.equal(second.json.next_cursor, null);
  });

  it('sends a selector task to exactly the matching live endpoints, and shows the selector and what it resolved to', async function () {
    const selector = 'role=web, region in (eu,us), !canary';
    const expected = names((e) => e.labels.role === 'web' && e.labels.canary === undefined);
    const res = await h.post('worker', { identifier: 'sel-web', payload: { sleep: 0 }, selector });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.selector, selector);
    assert.deepEqual(res.json.endpoints, expected);
    await h.waitForStatus('worker', 'sel-web', ['DONE']);
    const stored = await h.query<{ endpoint: string; status: number; errnr: number }>(
      'SELECT r.endpoint, r.status, r.errnr FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = ? ORDER BY r.endpoint', ['sel-web']);
    assert.deepEqual(stored.map((r) => r.endpoint), expected);
    assert.ok(stored.every((r) => Number(r.status) === 1 && Number(r.errnr) === 0), JSON.stringify(stored));
    const got = await h.get('worker/sel-web');
    assert.equal(got.json.task.selector, selector);
    assert.deepEqual(got.json.task.endpoints, expected);
    assert.deepEqual(got.json.taskResponseList.map((r: any) => r.endpoint).sort(), expected);
    const created = (await h.get('worker/sel-web/events')).json.events.find((e: any) => e.kind === 'created');
    assert.equal(created.detail.selector, selector);
    // A repeat is the same request, written otherwise or not: 200 with the stored task.
    const again = await h.post('worker', { identifier: 'sel-web', payload: { sleep: 0 }, selector: 'role==web,region in (eu, us),!canary' });
    assert.equal(again.status, 200, JSON.stringify(again.json));
    assert.equal(again.json.id, res.json.id);
    assert.equal((await h.post('worker', { identifier: 'sel-web', payload: { sleep: 0 }, selector: 'role=db' })).status, 409);
  });

  it('selects by a fact as by a label, and goes to no endpoint of another type', async function () {
    const res = await h.post('worker', { identifier: 'sel-fact', payload: { sleep: 0 }, selector: `arch=${process.arch},role=cache` });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json.endpoints, ['cache-ap-1', 'cache-ap-2']);
    await h.waitForStatus('worker', 'sel-fact', ['DONE']);
    // The fleet serves worker only: a backup task's selector finds none of them live for its type.
    const backup = await h.post('backup', { identifier: 'sel-backup', selector: 'role=cache' });
    assert.equal(backup.status, 422);
    assert.equal(backup.json.error.code, 'no_matching_endpoints');
  });

  it('answers a dry run with the resolved set and creates nothing: no task, no queue', async function () {
    const tasksBefore = await taskCount(h);
    const queuesBefore = (await queueNames(h)).sort();
    const dry = await h.post('worker?dry_run=true', { identifier: 'dry-1', selector: 'role=db,tier=primary' });
    assert.equal(dry.status, 200, JSON.stringify(dry.json));
    assert.deepEqual(dry.json, { dry_run: true, selector: 'role=db,tier=primary', endpoints: ['db-eu-1', 'db-us-1'], count: 2 });
    // With names, too; a name that never registered is answered as the real POST would (422), and allowed it is listed, yet no queue appears.
    const listed = await h.post('worker?dry_run=true', { identifier: 'dry-2', endpoints: ['db-eu-2', 'ghost-1'], allow_unknown_endpoints: true });
    assert.deepEqual([listed.status, listed.json.endpoints, listed.json.selector], [200, ['db-eu-2', 'ghost-1'], null]);
    assert.equal((await h.post('worker?dry_run=true', { identifier: 'dry-3', endpoints: ['ghost-1'] })).status, 422);
    const broadcast = await h.post('worker?dry_run=true', { identifier: 'dry-4' });
    assert.deepEqual(broadcast.json.endpoints, NAMES);
    assert.equal((await h.post('worker?dry_run=maybe', { identifier: 'dry-5', selector: 'role=db' })).status, 400);
    assert.equal(await taskCount(h), tasksBefore);
    assert.equal((await h.get('worker/dry-1')).status, 404);
    assert.deepEqual((await queueNames(h)).sort(), queuesBefore);
  });

  it('refuses a malformed selector with 400 bad_selector pointing at the offending character, storing nothing', async function () {
    const before = await taskCount(h);
    const cases: [string, number][] = [['role=web,,region=eu', 9], ['role in (web', 12], ['role=web,region=e u', 18], ['Bad_/x', 0], ['role=web!', 8]];
    for (const [selector, position] of cases) {
      const res = await h.post('worker', { identifier: 'bad-sel', selector });
      assert.equal(res.status, 400, selector);
      assert.equal(res.json.error.code, 'bad_selector', selector);
      assert.equal(res.json.error.position, position, `${selector}: ${res.json.error.message}`);
      const listed = await h.get(`endpoints?selector=${encodeURIComponent(selector)}`);
      assert.deepEqual([listed.status, listed.json.error.code, listed.json.error.position], [400, 'bad_selector', position], selector);
    }
    const both = await h.post('worker', { identifier: 'bad-sel', selector: 'role=web', endpoints: ['web-eu-1'] });
    assert.equal(both.status, 400);
    assert.match(both.json.error.message, /either endpoints or selector, not both/);
    assert.equal((await h.post('worker', { identifier: 'bad-sel', selector: '' })).status, 400);
    assert.equal(await taskCount(h), before);
  });

  it('answers a selector matching nothing with 422 and the reason, storing nothing', async function () {
    const before = await taskCount(h);
    const res = await h.post('worker', { identifier: 'sel-none', selector: 'role=web,region=mars' });
    assert.equal(res.status, 422);
    assert.equal(res.json.error.code, 'no_matching_endpoints');
    assert.match(res.json.error.message, /selector 'role=web,region=mars' matches none of the 12 live endpoints of task type 'worker'/);
    assert.equal(await taskCount(h), before);
  });

  it('shows labels in tasker endpoints, filters with -l, and sends with tasker send -l', async function () {
    const all = await cli(h, ['endpoints', '-o', 'table']);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /LABELS/);
    assert.match(all.stdout, /db-eu-1 .* region=eu,role=db,tier=primary/);
    const dbs = await cli(h, ['endpoints', '-l', 'role=db,tier=replica', '-o', 'table']);
    assert.equal(dbs.code, 0, dbs.stderr);
    assert.deepEqual(dbs.stdout.split('\n').filter((l) => /^(web|db|cache)-/.test(l)).map((l) => l.split(/\s+/)[0]), ['db-eu-2', 'db-us-2']);
    assert.match(dbs.stdout, /2 matching/);
    const bad = await cli(h, ['endpoints', '-l', 'role in (db']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /400 bad_selector/);
    const sent = await cli(h, ['send', 'worker', '--identifier', 'cli-sel', '-l', 'role=db,region=us', '--payload', '{"sleep": 0}', '--wait', '-o', 'json']);
    assert.equal(sent.code, 0, sent.stderr);
    const got = (await h.get('worker/cli-sel')).json.task;
    assert.deepEqual([got.selector, got.endpoints, got.status], ['role=db,region=us', ['db-us-1', 'db-us-2'], 'DONE']);
    const dry = await cli(h, ['send', 'worker', '--identifier', 'cli-dry', '-l', 'role=cache', '--dry-run', '-o', 'table']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would send to 2 endpoints \(selector role=cache\):\n {2}cache-ap-1\n {2}cache-ap-2/);
    assert.equal((await h.get('worker/cli-dry')).status, 404);
  });

  it('rolls a selector\'s task out over what it resolved to', async function () {
    const res = await h.post('worker', { identifier: 'sel-roll', payload: { sleep: 0 }, selector: 'role=db', rollout: { batch_size: '50%' } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json.endpoints, names((e) => e.labels.role === 'db'));
    assert.equal(res.json.rollout.batch_size, 2);
    assert.equal(res.json.responses.queued, 2);
    const done = await h.waitForStatus('worker', 'sel-roll', ['DONE']);
    assert.equal(done.task.responses.succeeded, 4);
  });

  it('resolves a schedule\'s selector at each firing, and records a firing that matches nothing', async function () {
    const call = async (method: string, pathname: string, body?: unknown): Promise<{ status: number; json: any }> => {
      const res = await fetch(`${h.baseUrl}${pathname}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, json: await res.json() };
    };
    const bad = await call('POST', '/schedules', { name: 'sel-bad', task_type: 'worker', every: '1s', selector: 'tier in primary' });
    assert.deepEqual([bad.status, bad.json.error.code, bad.json.error.position], [400, 'bad_selector', 8]);
    const made = await call('POST', '/schedules', { name: 'sel-tick', task_type: 'worker', every: '1s', payload: { sleep: 0 }, selector: 'tier=primary' });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    assert.equal(made.json.selector, 'tier=primary');
    const fired = await until('a firing', async () => (await call('GET', '/schedules/sel-tick')).json.last_task_identifier as string | null, 20_000);
    const task = (await h.get(`worker/${fired}`)).json.task;
    assert.deepEqual([task.selector, task.endpoints], ['tier=primary', ['db-eu-1', 'db-us-1']]);
    assert.equal((await call('DELETE', '/schedules/sel-tick')).status, 200);
    const none = await call('POST', '/schedules', { name: 'sel-none', task_type: 'worker', every: '1s', selector: 'role=mainframe' });
    assert.equal(none.status, 201);
    const error = await until('a refused firing', async () => (await call('GET', '/schedules/sel-none')).json.last_error as string | null, 20_000);
    assert.match(error, /^no_matching_endpoints: selector 'role=mainframe' matches none/);
    assert.equal((await call('DELETE', '/schedules/sel-none')).status, 200);
  });

  it('leaves a stopped (stale) endpoint out of a selector\'s task and lists it as stale', async function () {
    await managers.get('web-us-3')!.stop();
    await until('web-us-3 stale', async () => (await h.get('endpoints')).json.endpoints.find((e: any) => e.name === 'web-us-3').stale === true, 30_000);
    const listed = await h.get(`endpoints?selector=${encodeURIComponent('role=web,region=us')}`);
    assert.deepEqual(listed.json.endpoints.map((e: any) => [e.name, e.stale]), [['web-us-1', false], ['web-us-2', false], ['web-us-3', true]]);
    const res = await h.post('worker', { identifier: 'sel-us', payload: { sleep: 0 }, selector: 'role=web,region=us' });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json.endpoints, ['web-us-1', 'web-us-2']);
    await h.waitForStatus('worker', 'sel-us', ['DONE']);
    const rows = await h.query<{ endpoint: string }>('SELECT r.endpoint FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = ? ORDER BY r.endpoint', ['sel-us']);
    assert.deepEqual(rows.map((r) => r.endpoint), ['web-us-1', 'web-us-2']);
  });

  it('shows the labels of an endpoint\'s latest life, even beside a row of a type it no longer serves', async function () {
    const first = await h.startManager('relabel-1', ['worker', 'backup'], { TASKER_LABELS: 'role=old,zone=a' });
    await until('relabel-1 with its first labels', async () => (await h.get('endpoints')).json.endpoints.find((e: any) => e.name === 'relabel-1')?.labels.role === 'old');
    await first.stop();
    await h.startManager('relabel-1', ['worker'], {}, ['--label', 'role=new']);
    const shown = await until('relabel-1 with its new labels', async () => {
      const e = (await h.get('endpoints')).json.endpoints.find((x: any) => x.name === 'relabel-1');
      return e?.labels.role === 'new' && e;
    });
    assert.deepEqual(shown.labels, { role: 'new' });
    assert.deepEqual(shown.task_types, ['backup', 'worker']);
    assert.deepEqual((await h.post('worker?dry_run=true', { identifier: 'relabel', selector: 'role in (old,new)' })).json.endpoints, ['relabel-1']);
  });

  it('refuses to start a manager whose configured label is bad, naming the key', async function () {
    const configured = h.spawnManager('bad-label-1', ['worker'], { TASKER_MANAGER__ENDPOINTS: JSON.stringify([{ name: 'bad-label-1', labels: { role: 'web', 'Team/x': 'ok' } }]) });
    assert.equal(await configured.exited, 2);
    assert.match(configured.raw.join('\n'), /config key 'manager\.endpoints\[0\]\.labels\.Team\/x': label key 'Team\/x'/);
    const value = h.spawnManager('bad-label-2', ['worker'], { TASKER_MANAGER__ENDPOINTS: JSON.stringify([{ name: 'bad-label-2', labels: { role: '-web' } }]) });
    assert.equal(await value.exited, 2);
    assert.match(value.raw.join('\n'), /config key 'manager\.endpoints\[0\]\.labels\.role': label value '-web'/);
    const env = h.spawnManager('bad-label-3', ['worker'], { TASKER_LABELS: 'role=web,region' });
    assert.equal(await env.exited, 2);
    assert.match(env.raw.join('\n'), /TASKER_LABELS: .*region/);
    const flag = h.spawnManager('bad-label-4', ['worker'], {}, ['--label', 'ro le=web']);
    assert.notEqual(await flag.exited, 0);
    assert.match(flag.raw.join('\n'), /--label: label key 'ro le'/);
    assert.ok(!(await h.get('endpoints')).json.endpoints.some((e: any) => e.name.startsWith('bad-label')));
  });
});

describe('selectors in standalone mode (in-process transport, SQLite)', function () {
  const h = new Harness({ backend: 'standalone', env: { TASKER_API__UNKNOWN_ENDPOINTS: 'refuse' } });

  before(async function () {
    await h.setup(this);
    await h.startAllInOne([
      { name: 'console1', task_types: ['worker', 'backup'], labels: { role: 'web', region: 'eu' } },
      { name: 'console2', task_types: ['worker', 'backup'], labels: { role: 'web', region: 'us' } },
      { name: 'console3', task_types: ['worker'], labels: { role: 'db', region: 'eu' } },
    ]);
    await until('all three registered', async () => (await h.get('endpoints')).json.endpoints.length === 3);
  });

  after(async function () {
    await h.teardown();
  });

  it('resolves a selector to the matching endpoints, sends to them only, and dry-runs without storing', async function () {
    const listed = await h.get(`endpoints?selector=${encodeURIComponent('region=eu')}`);
    assert.deepEqual([listed.json.count, listed.json.endpoints.map((e: any) => e.name)], [2, ['console1', 'console3']]);
    assert.deepEqual(listed.json.endpoints[0].labels, { role: 'web', region: 'eu' });
    assert.equal(listed.json.endpoints[0].facts.os, process.platform);
    const dry = await h.post('worker?dry_run=true', { identifier: 'sa-dry', selector: 'role=web' });
    assert.deepEqual(dry.json.endpoints, ['console1', 'console2']);
    assert.equal((await h.get('worker/sa-dry')).status, 404);
    const res = await h.post('worker', { identifier: 'sa-sel', payload: { sleep: 0 }, selector: 'role=web,region!=us' });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual([res.json.selector, res.json.endpoints], ['role=web,region!=us', ['console1']]);
    await h.waitForStatus('worker', 'sa-sel', ['DONE']);
    const rows = await h.query<{ endpoint: string; status: number }>('SELECT r.endpoint, r.status FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier = ?', ['sa-sel']);
    assert.deepEqual(rows.map((r) => [r.endpoint, Number(r.status)]), [['console1', 1]]);
    // console3 serves no backup: a selector naming it finds nothing live for that type.
    const none = await h.post('backup', { identifier: 'sa-none', selector: 'role=db' });
    assert.deepEqual([none.status, none.json.error.code], [422, 'no_matching_endpoints']);
    const bad = await h.post('worker', { identifier: 'sa-bad', selector: 'role in web' });
    assert.deepEqual([bad.status, bad.json.error.code, bad.json.error.position], [400, 'bad_selector', 8]);
  });
});
