import assert from 'node:assert/strict';
import { freePort, Harness, type Proc } from '../support/harness';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `tick-20261124T101502Z` → its scheduled time in ms. */
function scheduledMs(identifier: string): number {
  const m = /-(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(identifier);
  assert.ok(m, identifier);
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/**
 * Schedules through real API processes (two of them at once), a real manager, RabbitMQ and MariaDB:
 * each scheduled time creates one task whichever instance fires it, a pause stops the firings, and an
 * outage of every API is caught up with one firing.
 */
describe('schedules (RabbitMQ + MariaDB, two API instances)', function () {
  const h = new Harness({ env: { TASKER_API__SCHEDULE_INTERVAL: '0.2' } });
  let secondPort = 0;
  const apis: Proc[] = [];

  const call = async (method: string, path: string, body?: unknown, port = h.port): Promise<{ status: number; json: any }> => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };

  /** The identifiers of the tasks a schedule created, oldest scheduled time first. */
  const firingsOf = async (name: string): Promise<string[]> =>
    (await h.query<{ identifier: string }>('SELECT identifier FROM task WHERE identifier LIKE ? ORDER BY identifier', [`${name}-%`])).map((r) => r.identifier);

  async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await sleep(200);
    }
  }

  before(async function () {
    await h.setup(this);
    secondPort = await freePort();
    apis.push(await h.startApi(), await h.startApi(secondPort));
    await h.startManager('console1', ['worker', 'backup']);
  });

  after(async function () {
    await h.teardown();
  });

  it('creates each firing of `every: 2s` exactly once over 20 s with two API instances, consecutive, and none while paused', async function () {
    this.timeout(120_000);
    const made = await call('POST', '/schedules', { name: 'tick', task_type: 'worker', every: '2s', payload: { sleep: 0 }, endpoints: ['console1'] });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    const first = Date.parse(made.json.next_fire_time);
    // Counted by scheduled times: ten of them make the 20 s.
    await until('ten firings', async () => (await firingsOf('tick')).length >= 10);
    const paused = await call('POST', '/schedules/tick/pause', undefined, secondPort);
    assert.equal(paused.status, 200);
    assert.equal(paused.json.paused, true);
    assert.equal(paused.json.next_fire_time, null);

    const ids = await firingsOf('tick');
    const times = ids.map(scheduledMs);
    assert.equal(times[0], first, 'the first firing is the first scheduled time');
    for (let i = 1; i < times.length; i++) assert.equal(times[i] - times[i - 1], 2000, `consecutive: ${ids[i - 1]} then ${ids[i]}`);
    // One task per time, created once and sent once: one "created" event and one response each.
    const perTask = await h.query<{ identifier: string; created: number; responses: number; actor: string }>(
      `SELECT t.identifier, (SELECT COUNT(*) FROM task_event e WHERE e.task_id = t.id AND e.kind = 'created') AS created,
         (SELECT COUNT(*) FROM task_response r WHERE r.task_id = t.id) AS responses,
         (SELECT MIN(e.actor) FROM task_event e WHERE e.task_id = t.id AND e.kind = 'created') AS actor
       FROM task t WHERE t.identifier LIKE 'tick-%'`);
    assert.equal(perTask.length, ids.length);
    for (const t of perTask) assert.deepEqual([Number(t.created), Number(t.responses), t.actor], [1, 1, 'schedule:tick'], t.identifier);
    for (const id of ids.slice(0, 3)) await h.waitForStatus('worker', id, ['DONE']);

    // Paused: no firing over three of its intervals.
    await sleep(6000);
    assert.deepEqual(await firingsOf('tick'), ids);
    const listed = await call('GET', '/schedules', undefined, secondPort);
    const tick = listed.json.schedules.find((s: any) => s.name === 'tick');
    assert.equal(tick.last_task_identifier, ids[ids.length - 1]);
    assert.equal(tick.last_error, null);

    // Resumed: it goes on from the next time after now, with no catch-up of the pause.
    const resumedAt = Date.now();
    const resumed = await call('POST', '/schedules/tick/resume');
    assert.equal(resumed.status, 200);
    assert.ok(Date.parse(resumed.json.next_fire_time) > resumedAt - 1000, resumed.json.next_fire_time);
    const more = await until('a firing after the resume', async () => {
      const now = await firingsOf('tick');
      return now.length > ids.length && now;
    });
    assert.equal(more.length, ids.length + 1, 'one firing after the resume, none for the paused times');
    assert.equal(scheduledMs(more[more.length - 1]), Date.parse(resumed.json.next_fire_time));
    assert.equal((await call('DELETE', '/schedules/tick')).status, 200);
  });

  it('catches up once on the first missed firing after every API was down, then goes on from the present', async function () {
    this.timeout(120_000);
    const made = await call('POST', '/schedules', { name: 'gap', task_type: 'worker', every: '2s', endpoints: ['console1'] });
    assert.equal(made.status, 201, JSON.stringify(made.json));
    await until('a first firing', async () => (await firingsOf('gap')).length >= 1);
    for (const p of apis.splice(0)) await p.stop();
    const before = await firingsOf('gap');
    const last = scheduledMs(before[before.length - 1]);
    // Down for at least three of its scheduled times.
    await sleep(Math.max(0, last + 7000 - Date.now()));
    apis.push(await h.startApi());
    const after = await until('the catch-up and a firing after it', async () => {
      const now = await firingsOf('gap');
      return now.length >= before.length + 2 && now;
    });
    const times = after.map(scheduledMs);
    const missed = times.filter((t) => t > last && t <= last + 6000);
    assert.deepEqual(missed, [last + 2000], `one catch-up, for the first missed time: ${after.join(', ')}`);
    const back = times.filter((t) => t > last + 6000);
    for (let i = 1; i < back.length; i++) assert.equal(back[i] - back[i - 1], 2000, 'then every 2 s again');
    const s = (await call('GET', '/schedules/gap')).json;
    assert.ok(Date.parse(s.next_fire_time) > Date.parse(s.last_fire_time), JSON.stringify(s));
    assert.equal((await call('POST', '/schedules/gap/pause')).status, 200);
  });

  it('refuses bad schedules with a 400 naming the field, a taken name with a 409, an unknown one with a 404', async function () {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cron: '61 * * * *' }, /^cron: /],
      [{ cron: '0 0 30 2 *' }, /^cron: .*matches no time/],
      [{ cron: '* * * * *', timezone: 'Mars/Base' }, /^timezone: /],
      [{ cron: '* * * * *', every: '2s' }, /^cron, every: /],
      [{ every: '2 seconds' }, /^every /],
      [{ every: '0s' }, /^every: /],
      [{ every: '1m', task_type: 'nope' }, /^task_type: /],
      [{ every: '1m', name: 'x'.repeat(48) }, /^name /],
    ];
    for (const [fields, message] of cases) {
      const r = await call('POST', '/schedules', { name: 'bad', task_type: 'worker', ...fields });
      assert.equal(r.status, 400, JSON.stringify(fields));
      assert.equal(r.json.error.code, 'invalid_request');
      assert.match(r.json.error.message, message, JSON.stringify(fields));
    }
    assert.equal((await call('GET', '/schedules/bad')).status, 404);
    const ok = await call('POST', '/schedules', { name: 'nightly', task_type: 'backup', cron: '30 2 * * *', timezone: 'europe/berlin', paused: true });
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
    assert.equal(ok.json.timezone, 'Europe/Berlin');
    const dup = await call('POST', '/schedules', { name: 'nightly', task_type: 'worker', every: '1m' });
    assert.deepEqual([dup.status, dup.json.error.code], [409, 'schedule_exists']);
    const patched = await call('PATCH', '/schedules/nightly', { timezone: 'Nowhere/Land' });
    assert.equal(patched.status, 400);
    assert.match(patched.json.error.message, /^timezone: /);
    assert.equal((await call('PATCH', '/schedules/nosuch', { every: '1m' })).status, 404);
    assert.equal((await call('DELETE', '/schedules/nightly')).status, 200);
    assert.equal((await call('DELETE', '/schedules/nightly')).status, 404);
  });
});
