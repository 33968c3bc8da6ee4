import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { ENDPOINT_STATE } from '../../api/lifecycle/states';
import { Topology } from '../../protocol/topology';
import { Backend, Harness, Proc, storedTimeMs } from '../support/harness';
import { readEventStream } from '../support/sse';

const TOPOLOGY = new Topology('tasker', 'classic');
const name = (i: number): string => `ep${String(i).padStart(2, '0')}`;
const UP = Array.from({ length: 17 }, (_v, i) => name(i + 1));
const DOWN = [name(18), name(19), name(20)];
const ALL = [...UP, ...DOWN];
const TYPES = ['worker', 'flaky'];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Operating broadcasts (find, watch, retry the remainder, cancel, history) through the real processes, on
 * both backends: 17 endpoints up and 3 down at first.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`operating a broadcast (${backend})`, function () {
  const h = new Harness({
    backend, waitTimeout: 3, env: { TASKER_TASK_TYPES: '[worker, backup, flaky]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers' },
  });
  /** The processes running endpoints, by what they run (rabbitmq: managers; standalone: the one process). */
  const procs: Proc[] = [];
  const spec = (names: string[]) => names.map((n) => ({ name: n, task_types: TYPES }));

  before(async function () {
    await h.setup(this);
    if (backend === 'rabbitmq') {
      await h.startApi();
      procs.push(await h.startManager(UP, TYPES));
    } else {
      procs.push(await h.startAllInOne(spec(UP)));
    }
  });

  after(async function () {
    await h.teardown();
  });

  /** Brings more endpoints up: a manager process of their own, or the standalone process started again with them. */
  async function startEndpoints(names: string[], running: string[]): Promise<void> {
    if (backend === 'rabbitmq') {
      procs.push(await h.startManager(names, TYPES));
      return;
    }
    const all = procs.pop() as Proc;
    assert.equal(await all.stop(), 0);
    procs.push(await h.startAllInOne(spec([...running, ...names])));
  }

  const lines = () => procs.flatMap((p) => p.lines);
  const get = (path: string) => h.get(path);

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  it('shows every expected endpoint with its state, and retries the failed ones only (idempotently)', async function () {
    const failing = UP.slice(0, 5);
    const created = await h.post('flaky', { identifier: 'wide', payload: { sleep: 0, fail: failing }, endpoints: ALL });
    assert.equal(created.status, 201);
    assert.equal(created.json.responses.pending, 20);
    const incomplete = await h.waitForStatus('flaky', 'wide', ['INCOMPLETE'], 20_000);
    const counts = incomplete.task.responses;
    assert.deepEqual([counts.succeeded, counts.failed, counts.missing, counts.pending, counts.running], [12, 5, 3, 0, 0]);
    const byState = (list: any[], state: string) => list.filter((r) => r.state === state).map((r) => r.endpoint).sort();
    assert.deepEqual(byState(incomplete.taskResponseList, 'failed'), failing);
    assert.deepEqual(byState(incomplete.taskResponseList, 'missing'), DOWN);
    assert.deepEqual(incomplete.taskResponseList.find((r: any) => r.endpoint === failing[0]).failure, 'error');
    assert.deepEqual(incomplete.taskResponseList.find((r: any) => r.endpoint === DOWN[0]).status, null);

    const failedPage = await get('flaky/wide/responses?state=failed&limit=3');
    assert.equal(failedPage.json.responses.length, 3);
    const rest = await get(`flaky/wide/responses?state=failed&cursor=${failedPage.json.next_cursor}`);
    assert.equal(rest.json.next_cursor, null);
    assert.deepEqual([...failedPage.json.responses, ...rest.json.responses].map((r: any) => r.endpoint).sort(), failing);
    assert.deepEqual((await get('flaky/wide/responses?state=missing')).json.responses.map((r: any) => r.endpoint), DOWN);

    const retried = await h.post('flaky/wide/retry', { endpoints: 'failed' }, { 'idempotency-key': 'retry-1' });
    assert.equal(retried.status, 200, JSON.stringify(retried.json));
    assert.deepEqual([...retried.json.retried].sort(), failing);
    // The same request again changes and sends nothing.
    const again = await h.post('flaky/wide/retry', { endpoints: 'failed' }, { 'idempotency-key': 'retry-1' });
    assert.equal(again.status, 200);
    assert.deepEqual([...again.json.retried].sort(), failing);

    const afterRetry = await waitFor('the retried endpoints to succeed', async () => {
      const { json } = await get('flaky/wide');
      return json.task.responses.succeeded === 17 ? json : undefined;
    });
    for (const r of afterRetry.taskResponseList.filter((x: any) => failing.includes(x.endpoint))) {
      assert.deepEqual([r.state, r.round, r.payload], ['succeeded', 1, { round: 1, cancelled: false }]);
    }
    // Exactly the failed ones ran again, once each: a targeted send, and the repeat sent nothing.
    const reruns = lines().filter((l) => l.msg === 'running handler' && l.taskId === created.json.id && l.round === 1).map((l) => l.endpoint);
    assert.deepEqual(reruns.sort(), failing);
    if (backend === 'rabbitmq') {
      // The endpoints that are down hold the first send only.
      const depths = await h.withChannel((ch) => Promise.all(DOWN.map(async (ep) => (await ch.checkQueue(TOPOLOGY.endpointQueueName('flaky', ep))).messageCount)));
      assert.deepEqual(depths, [1, 1, 1]);
    }
    // The previous results stay in the history.
    const { json: history } = await get('flaky/wide/events');
    const retriedEvent = history.events.find((e: any) => e.kind === 'retried');
    assert.deepEqual(retriedEvent.detail.endpoints.map((e: any) => [e.endpoint, e.round, e.previous.errnr, e.previous.errmsg]).sort(),
      failing.map((ep) => [ep, 1, 7, 'failed as asked']));
    assert.equal(history.events.filter((e: any) => e.kind === 'retried').length, 1);
    // The retry's send is in the history with its round, whether the confirm or a first answer recorded it.
    const sentAfter = history.events.slice(history.events.indexOf(retriedEvent)).filter((e: any) => e.kind === 'sent');
    assert.deepEqual(sentAfter.map((e: any) => e.detail.round), [1], JSON.stringify(sentAfter));

    // The three that were down start late and finish the task.
    await startEndpoints(DOWN, UP);
    const done = await h.waitForStatus('flaky', 'wide', ['DONE'], 30_000);
    assert.equal(done.task.responses.succeeded, 20);
    assert.deepEqual(history.events.slice(0, 2).map((e: any) => e.kind), ['created', 'sent']);
  });

  it('answers 409 for a retry of a running endpoint or of nothing, and changes nothing', async function () {
    await h.post('flaky', { identifier: 'busy', payload: { sleep: 2 }, endpoints: [UP[5]] });
    await waitFor('the handler to run', async () => ((await get('flaky/busy')).json.taskResponseList[0].state === 'running' ? true : undefined));
    const running = await h.post('flaky/busy/retry', { endpoints: [UP[5]] });
    assert.equal(running.status, 409);
    assert.equal(running.json.error.code, 'endpoint_running');
    const nothing = await h.post('flaky/busy/retry', { endpoints: 'failed' });
    assert.equal(nothing.status, 409);
    assert.equal(nothing.json.error.code, 'nothing_to_retry');
    const done = await h.waitForStatus('flaky', 'busy', ['DONE']);
    assert.equal(done.taskResponseList[0].round, 0);
    assert.equal((await get('flaky/busy/events')).json.events.filter((e: any) => e.kind === 'retried').length, 0);
  });

  it('cancels: running handlers are aborted and their results kept, endpoints that had not started skip it', async function () {
    const late = name(21);
    const created = await h.post('flaky', { identifier: 'stop-me', payload: { sleep: 3 }, endpoints: [UP[6], UP[7], late] });
    // Running, and known to be (their receipts stored).
    await waitFor('the handlers to run', async () => ((await get('flaky/stop-me')).json.task.responses.running === 2 ? true : undefined));
    const cancelled = await h.post('flaky/stop-me/cancel', '{}');
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));
    assert.equal(cancelled.json.status, 'CANCELLED');
    assert.equal(cancelled.json.responses.cancelled, 1);
    assert.equal(cancelled.json.responses.running, 2);
    // The running ones saw response.signal aborted, and what they reported is kept.
    const reported = await waitFor('the running handlers to report', async () => {
      const { json } = await get('flaky/stop-me');
      return json.task.responses.succeeded === 2 ? json : undefined;
    }, 10_000);
    assert.equal(reported.task.status, 'CANCELLED');
    for (const r of reported.taskResponseList.filter((x: any) => x.endpoint !== late)) assert.deepEqual(r.payload, { round: 0, cancelled: true });
    assert.deepEqual(reported.taskResponseList.find((r: any) => r.endpoint === late).state, 'cancelled');
    assert.ok(lines().some((l) => l.msg === 'task cancelled; aborting its handler' && l.taskId === created.json.id));
    // Cancelling again changes nothing; cancelling a finished task is refused.
    assert.equal((await h.post('flaky/stop-me/cancel', '{}')).status, 200);
    const { json: events } = await get('flaky/stop-me/events');
    assert.equal(events.events.filter((e: any) => e.kind === 'cancelled').length, 1);
    await h.post('worker', { identifier: 'finished', payload: { sleep: 0 }, endpoints: [UP[8]] });
    await h.waitForStatus('worker', 'finished', ['DONE']);
    const refused = await h.post('worker/finished/cancel', '{}');
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error.code, 'task_ended');

    // The endpoint that was down starts now, with the task in its queue: it asks for the cancelled
    // tasks first and skips it.
    await startEndpoints([late], [...UP, ...DOWN]);
    await h.post('worker', { identifier: 'late-one', payload: { sleep: 0 }, endpoints: [late] });
    await h.waitForStatus('worker', 'late-one', ['DONE']);
    assert.ok(!lines().some((l) => l.msg === 'running handler' && l.taskId === created.json.id && l.endpoint === late));
    assert.equal((await get('flaky/stop-me')).json.taskResponseList.find((r: any) => r.endpoint === late).state, 'cancelled');
    if (backend === 'rabbitmq') {
      assert.ok(lines().some((l) => l.msg === 'task cancelled; skipped' && l.taskId === created.json.id && l.endpoint === late));
    }
  });

  it('answers 200 clients waiting on one task when it ends, woken by its end rather than by polling', async function () {
    const created = await h.post('worker', { identifier: 'awaited', payload: { sleep: 1 }, endpoints: [UP[9], UP[10]] });
    assert.equal(created.status, 201);
    const answers = await Promise.all(Array.from({ length: 200 }, async () => {
      const res = await fetch(`${h.baseUrl}/worker/awaited?wait=30`);
      return { at: Date.now(), status: res.status, json: await res.json() as any };
    }));
    const [row] = await h.query<{ end_time: unknown }>(`SELECT end_time FROM task WHERE identifier = 'awaited'`);
    const end = storedTimeMs(row.end_time);
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.equal(a.json.task.status, 'DONE');
      assert.ok(a.at >= end - 5, 'answered before the task ended');
    }
    // Far sooner than the 30 s they offered to wait: the end woke them (the bench measures how soon).
    const latest = Math.max(...answers.map((a) => a.at)) - end;
    assert.ok(latest < 10_000, `the last answer came ${latest} ms after the end`);
    // A wait that runs out answers the current state.
    await h.post('worker', { identifier: 'slow-wait', payload: { sleep: 3 }, endpoints: [UP[11]] });
    const early = await get('worker/slow-wait?wait=0.5');
    assert.equal(early.status, 200);
    assert.notEqual(early.json.task.status, 'DONE');
  });

  it('streams a task\'s events live, and resumes with Last-Event-ID without losing or repeating one', async function () {
    const created = await h.post('worker', { identifier: 'watched', payload: { sleep: 0.5 }, endpoints: [UP[12], UP[13]] });
    const url = `${h.baseUrl}/worker/watched/events`;
    const first = await readEventStream(url, { done: (ev) => ev.some((e) => e.event === 'sent') });
    assert.equal(first.status, 200);
    assert.match(first.contentType, /^text\/event-stream/);
    assert.deepEqual(first.events.slice(0, 2).map((e) => e.event), ['created', 'sent']);
    const last = first.events[first.events.length - 1].id;
    await h.waitForStatus('worker', 'watched', ['DONE']);
    const second = await readEventStream(url, { lastEventId: last, done: (ev) => ev.some((e) => e.event === 'done') });
    const { json: stored } = await get('worker/watched/events');
    assert.deepEqual([...first.events, ...second.events].map((e) => e.id), stored.events.map((e: any) => e.id));
    assert.ok(second.events.every((e) => e.id > last));
    const finished = stored.events.filter((e: any) => e.kind === 'finished').flatMap((e: any) => e.detail.endpoints.map((x: any) => x.endpoint));
    assert.deepEqual(finished.sort(), [UP[12], UP[13]]);
    assert.ok(stored.events.every((e: any) => e.task_id === created.json.id && e.identifier === 'watched'));
    // Every task's stream carries it too.
    const all = await readEventStream(`${h.baseUrl}/events?type=worker`, { lastEventId: 0, done: (ev) => ev.some((e) => e.data.identifier === 'watched' && e.event === 'done') });
    assert.ok(all.events.some((e) => e.data.identifier === 'watched' && e.event === 'created'));
  });

  if (backend === 'rabbitmq') it('sends every task\'s events in id order without skipping one that commits after a newer one', async function () {
    // Another writer takes an event id and has not committed when a newer event is announced.
    const other = await mysql.createConnection({ uri: h.config.manager.db.uri });
    let lateId = 0;
    try {
      const earlier = await h.post('worker', { identifier: 'before-late', payload: { sleep: 0 }, endpoints: [UP[14]] });
      await h.waitForStatus('worker', 'before-late', ['DONE']);
      const [{ id: before }] = await h.query<{ id: unknown }>('SELECT COALESCE(MAX(id), 0) AS id FROM task_event');
      const from = Number(before);
      await other.beginTransaction();
      const [inserted] = await other.query<mysql.ResultSetHeader>(
        "INSERT INTO task_event (task_id, time, kind, detail, actor) VALUES (?, UTC_TIMESTAMP(3), 'retried', NULL, 'late writer')", [earlier.json.id]);
      lateId = inserted.insertId;
      const stream = readEventStream(`${h.baseUrl}/events`, { lastEventId: from, timeoutMs: 20_000, done: (ev) => ev.some((e) => e.id === lateId) && ev.some((e) => e.data.identifier === 'after-late' && e.event === 'done') });
      assert.equal((await h.post('worker', { identifier: 'after-late', payload: { sleep: 0 }, endpoints: [UP[14]] })).status, 201);
      await h.waitForStatus('worker', 'after-late', ['DONE']);
      await other.commit();
      const { events } = await stream;
      const stored = (await h.query<{ id: unknown }>('SELECT id FROM task_event WHERE id > ? AND id <= ? ORDER BY id', [from, events[events.length - 1].id])).map((r) => Number(r.id));
      assert.deepEqual(events.map((e) => e.id), stored);
      assert.ok(events.findIndex((e) => e.id === lateId) < events.findIndex((e) => e.data.identifier === 'after-late'));
    } finally {
      await other.end();
    }
  });

  it('finds tasks by status, endpoint, state, time and identifier prefix, newest first, page by page', async function () {
    const before = new Date(Date.now() - 1);
    for (let i = 0; i < 5; i++) {
      await h.post('flaky', { identifier: `find-${i}`, payload: { sleep: 0, fail: i === 3 ? [UP[14]] : [] }, endpoints: i === 4 ? [UP[15]] : [UP[14]] });
    }
    for (let i = 0; i < 5; i++) await h.waitForStatus('flaky', `find-${i}`, ['DONE']);
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const { json }: { json: any } = await get(`flaky?identifier_prefix=find-&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      pages.push(json.tasks.map((t: any) => t.identifier));
      cursor = json.next_cursor;
    } while (cursor);
    assert.deepEqual(pages, [['find-4', 'find-3'], ['find-2', 'find-1'], ['find-0']]);
    const ids = async (query: string) => (await get(`flaky?${query}`)).json.tasks.map((t: any) => t.identifier);
    assert.deepEqual(await ids(`identifier_prefix=find-&endpoint=${UP[15]}`), ['find-4']);
    assert.deepEqual(await ids(`identifier_prefix=find-&state=failed`), ['find-3']);
    assert.deepEqual(await ids(`identifier_prefix=find-&endpoint=${UP[14]}&state=failed`), ['find-3']);
    assert.deepEqual(await ids('identifier_prefix=find-&status=DONE&limit=500'), ['find-4', 'find-3', 'find-2', 'find-1', 'find-0']);
    assert.deepEqual(await ids('identifier_prefix=find-&status=INCOMPLETE'), []);
    assert.deepEqual(await ids(`identifier_prefix=find-&since=${before.toISOString()}`), ['find-4', 'find-3', 'find-2', 'find-1', 'find-0']);
    assert.deepEqual(await ids(`identifier_prefix=find-&until=${before.toISOString()}`), []);
    assert.deepEqual(await ids('status=INCOMPLETE&state=missing'), []);
    const listed = (await get('flaky?identifier_prefix=find-3')).json.tasks[0];
    assert.deepEqual([listed.responses.failed, listed.responses.succeeded], [1, 0]);
  });

  it('lists the endpoints with their heartbeats, and what failed on one of them', async function () {
    const { json } = await get('endpoints?limit=1000');
    const byName = new Map(json.endpoints.map((e: any) => [e.name, e]));
    for (const ep of UP) {
      const e = byName.get(ep) as any;
      assert.ok(e, `${ep} registered`);
      assert.equal(e.alive, true);
      assert.deepEqual(e.task_types, ['flaky', 'worker']);
      assert.ok(Date.parse(e.last_heartbeat) >= Date.parse(e.first_seen));
    }
    const page1 = await get('endpoints?limit=5');
    const page2 = await get(`endpoints?limit=5&cursor=${page1.json.next_cursor}`);
    assert.equal(page2.json.endpoints[0].name > page1.json.endpoints[4].name, true);
    const failed = await get(`endpoints/${UP[14]}/responses?state=failed`);
    assert.equal(failed.status, 200);
    assert.deepEqual(failed.json.responses.map((r: any) => [r.type, r.identifier, r.state, r.errnr]), [['flaky', 'find-3', 'failed', 7]]);
    const all = await get(`endpoints/${UP[14]}/responses?type=flaky&limit=2`);
    assert.deepEqual(all.json.responses.map((r: any) => r.identifier), ['find-3', 'find-2']);
    assert.ok(all.json.next_cursor);
  });

  it('answers bad input with 400 naming the parameter, unknown things with 404, and changes nothing', async function () {
    // The runs of earlier tests may still be reporting (slow-wait's handler sleeps 3 s; a handler in a
    // worker process ends a little later): "changes nothing" is measured once no endpoint runs a task of
    // theirs any more and the history stands still.
    let [events] = await h.query('SELECT COUNT(*) AS n FROM task_event');
    for (const deadline = Date.now() + 30_000; ;) {
      await new Promise((r) => setTimeout(r, 1500));
      const [now] = await h.query('SELECT COUNT(*) AS n FROM task_event');
      const [running] = await h.query(`SELECT COUNT(*) AS n FROM task_response WHERE state = '${ENDPOINT_STATE.RUNNING}'`);
      if (now.n === events.n && Number(running.n) === 0) break;
      assert.ok(Date.now() < deadline, 'the history kept growing, or a run went on, for 30 s before the bad requests');
      events = now;
    }
    const [tasks] = await h.query('SELECT COUNT(*) AS n FROM task');
    const cases: [string, number, RegExp][] = [
      ['flaky?status=FINISHED', 400, /'status'/],
      ['flaky?state=broken', 400, /'state'/],
      ['flaky?limit=0', 400, /'limit'/],
      ['flaky?limit=501', 400, /'limit'/],
      ['flaky?cursor=not-a-cursor', 400, /'cursor'/],
      ['flaky?since=yesterday', 400, /'since'/],
      ['flaky?endpoint=a%20b', 400, /'endpoint'/],
      ['flaky?colour=blue', 400, /'colour'/],
      ['flaky?limit=1&limit=2', 400, /'limit'/],
      ['flaky/wide?wait=61', 400, /'wait'/],
      ['flaky/wide?wait=0', 400, /'wait'/],
      ['flaky/wide/responses?state=nope', 400, /'state'/],
      ['endpoints?cursor=eyJhZnRlciI6MX0', 400, /'cursor'/],
      ['nosuchtype?status=DONE', 404, /unknown task type/],
      ['flaky/no-such-task/responses', 404, /no flaky task/],
      ['flaky/no-such-task/events', 404, /no flaky task/],
      ['endpoints/nobody/responses', 404, /no endpoint 'nobody'/],
      [`endpoints/${UP[0]}/responses?type=nosuchtype`, 404, /unknown task type/],
      ['events?type=nosuchtype', 404, /unknown task type/],
    ];
    for (const [path, status, message] of cases) {
      const res = await get(path);
      assert.equal(res.status, status, `${path}: ${JSON.stringify(res.json)}`);
      assert.match(res.json.error.message, message, path);
    }
    const posts: [string, unknown, number, string][] = [
      ['flaky/wide/retry', { endpoints: [name(99)] }, 400, 'not an endpoint of this task'],
      ['flaky/wide/retry', { endpoints: 'everything' }, 400, 'endpoints must be'],
      ['flaky/wide/retry', { endpoints: 'failed', extra: 1 }, 400, 'unknown field'],
      ['flaky/wide/retry', '[]', 400, 'JSON object'],
      ['flaky/no-such-task/retry', { endpoints: 'failed' }, 404, 'no flaky task'],
      ['flaky/no-such-task/cancel', {}, 404, 'no flaky task'],
    ];
    for (const [path, body, status, message] of posts) {
      const res = await h.post(path, body);
      assert.equal(res.status, status, `${path}: ${JSON.stringify(res.json)}`);
      assert.ok(res.json.error.message.includes(message), `${path}: ${res.json.error.message}`);
    }
    const badKey = await h.post('flaky/wide/retry', { endpoints: 'failed' }, { 'idempotency-key': 'x'.repeat(200) });
    assert.equal(badKey.status, 400);
    assert.deepEqual(await h.query('SELECT COUNT(*) AS n FROM task'), [tasks]);
    assert.deepEqual(await h.query('SELECT COUNT(*) AS n FROM task_event'), [events]);
  });
});
