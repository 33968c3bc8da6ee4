import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { ScheduleService } from '../../api/schedule-service';
import { canonicalTimezone, checkCron, compactUtc, firingIdentifier, nextAfter, parseEvery, type Timing } from '../../api/schedule-timing';
import { createDataSource, migrate } from '../../api/storage/database';
import { ScheduleStore } from '../../api/storage/schedule-store';
import type { TaskRequest } from '../../api/task-request';
import type { TaskService } from '../../api/task-service';
import { InvalidRequestError, NoEndpointsError } from '../../lib/errors';
import { createLogger } from '../../lib/logger';
import { TLS_OFF } from '../../config/schema';

const at = (iso: string): Date => new Date(iso);
const berlin = (cron: string): Timing => ({ kind: 'cron', cron, timezone: 'Europe/Berlin' });

/** The first `n` firings after `from`, as ISO UTC. */
function firings(t: Timing, from: string, n: number): string[] {
  const out: string[] = [];
  let d: Date | null = at(from);
  for (let i = 0; i < n && d; i++) {
    d = nextAfter(t, d);
    if (d) out.push(d.toISOString());
  }
  return out;
}

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidRequestError, String(err));
    return err.message;
  }
  assert.fail('accepted');
};

describe('schedule timing', function () {
  it('reads every as a sum of s, m, h and d, at least 1s and at most 366d, and names the field otherwise', function () {
    assert.equal(parseEvery('2s'), 2);
    assert.equal(parseEvery('5m'), 300);
    assert.equal(parseEvery('1h30m'), 5400);
    assert.equal(parseEvery('1d'), 86400);
    assert.equal(parseEvery('366d'), 366 * 86400);
    for (const bad of ['0s', '', '2', '1.5s', '2 s', '1w', '-1s', '367d']) assert.match(refusal(() => parseEvery(bad)), /^every: /, bad);
  });

  it('takes IANA time zone names, as their canonical spelling, and names the field otherwise', function () {
    assert.equal(canonicalTimezone('UTC'), 'UTC');
    assert.equal(canonicalTimezone('europe/berlin'), 'Europe/Berlin');
    assert.equal(canonicalTimezone('Asia/Kolkata'), 'Asia/Kolkata');
    for (const bad of ['Mars/Base', 'Berlin', '+25:00']) assert.match(refusal(() => canonicalTimezone(bad)), /^timezone: /, bad);
  });

  it('refuses cron expressions that do not parse or match no time, naming the field', function () {
    const now = at('2026-01-01T00:00:00Z');
    for (const bad of ['61 * * * *', 'every day', '* * * *', '0 0 30 2 *']) assert.match(refusal(() => checkCron(bad, 'UTC', now)), /^cron: /, bad);
    checkCron('30 2 * * *', 'Europe/Berlin', now);
    checkCron('@daily', 'UTC', now);
    checkCron('*/5 * * * * *', 'UTC', now);
  });

  it('reads a cron expression in its time zone, the next firing strictly after the time given', function () {
    // 02:30 in Berlin is 01:30 UTC in winter (CET) and 00:30 UTC in summer (CEST).
    assert.deepEqual(firings(berlin('30 2 * * *'), '2026-01-10T00:00:00Z', 2), ['2026-01-10T01:30:00.000Z', '2026-01-11T01:30:00.000Z']);
    assert.deepEqual(firings(berlin('30 2 * * *'), '2026-06-10T00:30:00Z', 1), ['2026-06-11T00:30:00.000Z']);
    assert.deepEqual(firings({ kind: 'cron', cron: '0 * * * *', timezone: 'Asia/Kolkata' }, '2026-01-01T00:00:00Z', 2),
      ['2026-01-01T00:30:00.000Z', '2026-01-01T01:30:00.000Z']);
    assert.deepEqual(firings({ kind: 'cron', cron: '*/5 * * * * *', timezone: 'UTC' }, '2026-01-01T00:00:05.500Z', 1), ['2026-01-01T00:00:10.000Z']);
  });

  it('fires a wall-clock time that does not exist on the day the clocks go forward an hour later (Europe/Berlin, 2026-03-29)', function () {
    // 02:30 does not exist that night: the clocks jump from 02:00 CET to 03:00 CEST. It fires at 03:30 CEST.
    assert.deepEqual(firings(berlin('30 2 * * *'), '2026-03-27T12:00:00Z', 4), [
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:30:00.000Z', // 03:30 CEST: the missing 02:30, an hour on
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
      '2026-03-31T00:30:00.000Z',
    ]);
    // A time that exists is not moved.
    assert.deepEqual(firings(berlin('0 3 * * *'), '2026-03-28T12:00:00Z', 2), ['2026-03-29T01:00:00.000Z', '2026-03-30T01:00:00.000Z']);
  });

  it('fires a wall-clock time that happens twice on the day the clocks go back once, at its first occurrence (Europe/Berlin, 2026-10-25)', function () {
    // 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET): only the first fires.
    assert.deepEqual(firings(berlin('30 2 * * *'), '2026-10-23T12:00:00Z', 4), [
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
      '2026-10-27T01:30:00.000Z',
    ]);
    // From between the two 02:30s, the repeat does not fire.
    assert.deepEqual(firings(berlin('30 2 * * *'), '2026-10-25T01:00:00Z', 1), ['2026-10-26T01:30:00.000Z']);
    // Every 20 minutes: the repeated 02:20 and 02:40 do not fire again, from any time within the repeat.
    for (const from of ['2026-10-25T00:50:00Z', '2026-10-25T01:00:00Z', '2026-10-25T01:10:00Z', '2026-10-25T01:40:00Z']) {
      assert.deepEqual(firings(berlin('*/20 * * * *'), from, 2), ['2026-10-25T02:00:00.000Z', '2026-10-25T02:20:00.000Z'], from);
    }
    // Hourly: the repeated 02:00 (01:00 UTC) does not fire a second time.
    assert.deepEqual(firings(berlin('0 * * * *'), '2026-10-24T23:30:00Z', 3), ['2026-10-25T00:00:00.000Z', '2026-10-25T02:00:00.000Z', '2026-10-25T03:00:00.000Z']);
  });

  it('counts an interval from its anchor, in UTC seconds, whatever the time zone does', function () {
    const t: Timing = { kind: 'every', seconds: 2, anchor: at('2026-03-29T00:59:59Z') };
    assert.deepEqual(firings(t, '2026-03-29T00:59:59Z', 3), ['2026-03-29T01:00:01.000Z', '2026-03-29T01:00:03.000Z', '2026-03-29T01:00:05.000Z']);
    // Strictly after: from a firing time, the one after it; before the anchor, the first one.
    assert.equal(nextAfter(t, at('2026-03-29T01:00:03Z'))?.toISOString(), '2026-03-29T01:00:05.000Z');
    assert.equal(nextAfter(t, at('2026-03-01T00:00:00Z'))?.toISOString(), '2026-03-29T01:00:01.000Z');
    const hourly: Timing = { kind: 'every', seconds: 3600, anchor: at('2026-10-24T23:00:00Z') };
    assert.deepEqual(firings(hourly, '2026-10-24T23:00:00Z', 4).map((d) => d.slice(11, 13)), ['00', '01', '02', '03']);
  });

  it('names each firing <name>-<scheduled time in UTC>, within the identifier pattern for the longest name', function () {
    assert.equal(compactUtc(at('2026-11-24T10:15:00.000Z')), '20261124T101500Z');
    const id = firingIdentifier('n'.repeat(47), at('2026-11-24T10:15:00Z'));
    assert.equal(id.length, 64);
    assert.match(id, /^[A-Za-z0-9._:-]{1,64}$/);
  });
});

describe('schedule firing (SQLite, fixed clock)', function () {
  let dir: string;
  let ds: DataSource;
  let clock: Date;
  let created: { type: string; req: TaskRequest; actor: string | null }[];
  let fail: Error | null;
  let service: ScheduleService;
  const logger = createLogger({}, 'error', { destination: { write: () => undefined } });

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-schedules-'));
    ds = createDataSource({ uri: `sqlite:${path.join(dir, 't.sqlite')}`, verbose: false, admin_uri: '', pool_size: 1, connect_timeout: 1, query_timeout: 10, tls: TLS_OFF }, dir);
    await ds.initialize();
    await migrate(ds);
    clock = at('2026-11-24T10:00:00.250Z');
    created = [];
    fail = null;
    const ids = new Set<string>();
    // The task service's contract that firing relies on: a repeated identifier creates nothing new.
    const tasks = {
      create: async (type: string, req: TaskRequest, actor: string | null) => {
        if (fail) throw fail;
        if (!ids.has(`${type}/${req.identifier}`)) created.push({ type, req, actor });
        ids.add(`${type}/${req.identifier}`);
        return {};
      },
    } as unknown as TaskService;
    service = new ScheduleService({ store: new ScheduleStore(ds), tasks, taskTypes: ['worker', 'backup'], logger, now: () => clock });
  });

  afterEach(async function () {
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const advance = (ms: number): void => {
    clock = new Date(clock.getTime() + ms);
  };

  it('hands its rollout to every task it creates', async function () {
    await service.create({ name: 'rolling', task_type: 'worker', every: '2s', rollout: { batch_size: '10%', max_errors: 1 } }, 'ops');
    advance(1900);
    assert.equal(await service.fireDue(), 1);
    assert.deepEqual(created[0].req.rollout, { batch_size: '10%', max_errors: 1 });
  });

  it('hands its selector to every task it creates, to be resolved at the firing; names and a selector exclude each other', async function () {
    const s = await service.create({ name: 'sel', task_type: 'worker', every: '2s', selector: 'role=web, region in (eu,us)' }, 'ops');
    assert.deepEqual([s.selector, s.endpoints], ['role=web, region in (eu,us)', null]);
    advance(1900);
    assert.equal(await service.fireDue(), 1);
    assert.equal(created[0].req.selector?.text, 'role=web, region in (eu,us)');
    assert.equal(created[0].req.selector?.parsed.length, 2);
    assert.equal(created[0].req.endpoints, null);
    await assert.rejects(service.create({ name: 'both', task_type: 'worker', every: '2s', selector: 'role=web', endpoints: ['console1'] }, 'ops'), /either endpoints or selector, not both/);
    await assert.rejects(service.create({ name: 'bad', task_type: 'worker', every: '2s', selector: 'role in web' }, 'ops'),
      (err: Error & { code?: string; position?: number }) => err.code === 'bad_selector' && err.position === 8);
    // Giving names replaces the selector, and the other way round.
    assert.deepEqual(await service.update('sel', { endpoints: ['console1'] }).then((u) => [u.endpoints, u.selector]), [['console1'], null]);
    assert.deepEqual(await service.update('sel', { selector: 'role=db' }).then((u) => [u.endpoints, u.selector]), [null, 'role=db']);
    await assert.rejects(service.update('sel', { selector: 'role=db', endpoints: ['console1'] }), /not both/);
    await assert.rejects(service.update('sel', { selector: 'role=' + 'x'.repeat(80) }), (err: Error & { code?: string }) => err.code === 'bad_selector');
    assert.equal((await service.get('sel')).selector, 'role=db');
  });

  it('creates one task per scheduled time, named after it, with the schedule as the actor', async function () {
    const s = await service.create({ name: 'tick', task_type: 'worker', every: '2s', payload: { n: 1 }, endpoints: ['console1'] }, 'ops');
    assert.equal(s.next_fire_time?.toISOString(), '2026-11-24T10:00:02.000Z');
    assert.equal(await service.fireDue(), 0, 'nothing is due yet');
    advance(1900);
    assert.equal(await service.fireDue(), 1);
    assert.equal(await service.fireDue(), 0, 'a firing happens once');
    advance(2000);
    await service.fireDue();
    assert.deepEqual(created.map((c) => c.req.identifier), ['tick-20261124T100002Z', 'tick-20261124T100004Z']);
    assert.deepEqual(created[0], { type: 'worker', req: { identifier: 'tick-20261124T100002Z', payload: { n: 1 }, endpoints: ['console1'], selector: null, rollout: null, timeout: null }, actor: 'schedule:tick' });
    const after = await service.get('tick');
    assert.equal(after.last_task_identifier, 'tick-20261124T100004Z');
    assert.equal(after.last_fire_time?.toISOString(), '2026-11-24T10:00:04.000Z');
    assert.equal(after.next_fire_time?.toISOString(), '2026-11-24T10:00:06.000Z');
  });

  it('catches up once after an outage: the first missed firing, then on from now', async function () {
    await service.create({ name: 'nightly', task_type: 'backup', cron: '30 2 * * *', timezone: 'Europe/Berlin' }, null);
    advance(3 * 86400_000); // three nights missed: 25th, 26th and 27th at 01:30 UTC
    assert.equal(await service.fireDue(), 1);
    assert.equal(await service.fireDue(), 0);
    assert.deepEqual(created.map((c) => c.req.identifier), ['nightly-20261125T013000Z']);
    const s = await service.get('nightly');
    assert.equal(s.next_fire_time?.toISOString(), '2026-11-28T01:30:00.000Z');
  });

  it('records why a firing created no task, and goes on to the next time', async function () {
    await service.create({ name: 'lonely', task_type: 'worker', every: '1m' }, null);
    fail = new NoEndpointsError('worker');
    advance(61_000);
    assert.equal(await service.fireDue(), 1);
    let s = await service.get('lonely');
    assert.match(String(s.last_error), /^no_endpoints: /);
    assert.equal(s.last_task_identifier, null);
    assert.equal(s.next_fire_time?.toISOString(), '2026-11-24T10:02:00.000Z');
    fail = null;
    advance(60_000);
    await service.fireDue();
    s = await service.get('lonely');
    assert.equal(s.last_error, null);
    assert.equal(s.last_task_identifier, 'lonely-20261124T100200Z');
  });

  it('does not fire while paused, and resumes from the next time after now without catching up', async function () {
    await service.create({ name: 'p', task_type: 'worker', every: '10s' }, null);
    const paused = await service.setPaused('p', true);
    assert.equal(paused.next_fire_time, null);
    advance(60_000);
    assert.equal(await service.fireDue(), 0);
    const resumed = await service.setPaused('p', false);
    assert.equal(resumed.next_fire_time?.toISOString(), '2026-11-24T10:01:10.000Z');
    advance(10_000);
    await service.fireDue();
    assert.deepEqual(created.map((c) => c.req.identifier), ['p-20261124T100110Z']);
  });

  it('refuses bad definitions with a 400 naming the field, and a second schedule of a name with a 409', async function () {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cron: '61 * * * *' }, /^cron: /],
      [{ cron: '* * * * *', timezone: 'Mars/Base' }, /^timezone: /],
      [{ cron: '* * * * *', every: '2s' }, /^cron, every: /],
      [{}, /^cron or every is required/],
      [{ every: '0s' }, /^every: /],
      [{ every: '1m', task_type: 'nope' }, /^task_type: /],
    ];
    for (const [fields, message] of cases) {
      await assert.rejects(service.create({ name: 'bad', task_type: 'worker', ...fields } as never, null), (err: Error) => {
        assert.ok(err instanceof InvalidRequestError, String(err));
        assert.match(err.message, message);
        return true;
      });
    }
    assert.deepEqual(await service.list(), []);
    await service.create({ name: 'one', task_type: 'worker', every: '1m' }, null);
    await assert.rejects(service.create({ name: 'one', task_type: 'worker', every: '1m' }, null), { status: 409, code: 'schedule_exists' });
    await assert.rejects(service.update('one', { cron: 'nope' }), /^InvalidRequestError: cron: /);
  });

  it('changes the timing: cron replaces every, and the next firing follows the new one', async function () {
    await service.create({ name: 'c', task_type: 'worker', every: '1h' }, null);
    const s = await service.update('c', { cron: '0 12 * * *', timezone: 'America/New_York' });
    assert.equal(s.every, null);
    assert.equal(s.cron, '0 12 * * *');
    assert.equal(s.next_fire_time?.toISOString(), '2026-11-24T17:00:00.000Z');
  });
});
