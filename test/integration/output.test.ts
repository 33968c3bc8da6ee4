import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { Topology } from '../../protocol/topology';
import { ensureDebianPackage } from '../support/debian';
import { Backend, Harness } from '../support/harness';

const NODE = process.execPath;
const ROOT = path.resolve(__dirname, '..', '..', '..');
const TASKER = path.join(ROOT, 'dist', 'cli', 'tasker.js');
/** Lines on stdout `gap` ms apart, every fifth one followed by one on stderr. */
const LINES = `const [n, gap] = process.argv.slice(1).map(Number); let i = 0;
const t = setInterval(() => { i++; console.log('line ' + i); if (i % 5 === 0) console.error('err ' + i); if (i === n) clearInterval(t); }, gap);`;
const FLOOD = 'const n = Number(process.argv[1]); for (let i = 1; i <= n; i++) console.log("x" + i);';
const WIDE = 'const [n, w] = process.argv.slice(1).map(Number); for (let i = 1; i <= n; i++) console.log(String(i).padEnd(w, "x"));';
const num = { type: 'integer', minimum: 0, maximum: 100000 };
const TASK_TYPES = [
  { name: 'out-lines', command: [NODE, '-e', LINES, '{count}', '{gap}'], payload_schema: { type: 'object', required: ['count', 'gap'], properties: { count: num, gap: num } } },
  { name: 'out-flood', command: [NODE, '-e', FLOOD, '{count}'], payload_schema: { type: 'object', required: ['count'], properties: { count: num } } },
  { name: 'out-wide', command: [NODE, '-e', WIDE, '{count}', '{width}'], payload_schema: { type: 'object', required: ['count', 'width'], properties: { count: num, width: num } } },
  'chatty',
];
/** The smallest bound on what an event stream may hold for its client (api.sse_max_buffered_bytes). */
const SSE_BUFFER = 65_536;
/** The server keeps this many lines of a run (api.output_max_lines); the second manager sends at most MANAGER_MAX. */
const SERVER_MAX = 100;
const MANAGER_MAX = 50;

interface Line { attempt: number; seq: number; stream: string; text: string; time: string }

const run = promisify(execFile);
const TOPOLOGY = new Topology('tasker', 'classic');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Live output end to end: command types' stdout and stderr and a module handler's response.log travel
 * as output events through the broker (or the standalone process's in-process queues), are stored bounded
 * and are served as JSON, as server-sent events, and by `tasker logs`.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`live output (${backend})`, function () {
  const h = new Harness({
    backend,
    env: {
      TASKER_TASK_TYPES: JSON.stringify(TASK_TYPES), TASKER_MANAGER__ENDPOINTS: '[]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers',
      TASKER_API__OUTPUT_MAX_LINES: String(SERVER_MAX), TASKER_API__SSE_MAX_BUFFERED_BYTES: String(SSE_BUFFER),
    },
  });
  const EP = 'out1';
  /** RabbitMQ only: a manager of its own with a lower manager.output_max_lines. */
  const EP_BOUNDED = 'out2';
  const names = TASK_TYPES.map((t) => (typeof t === 'string' ? t : t.name));

  before(async function () {
    await h.setup(this);
    if (backend === 'rabbitmq') {
      await h.startApi();
      await h.startManager(EP, names);
      await h.startManager(EP_BOUNDED, names, { TASKER_MANAGER__OUTPUT_MAX_LINES: String(MANAGER_MAX) });
    } else {
      await h.startSystem([{ name: EP, task_types: names }]);
    }
  });

  after(async function () {
    await h.teardown();
  });

  let n = 0;
  async function post(type: string, payload: unknown, ep = EP): Promise<string> {
    const identifier = `${type}-${++n}`;
    const res = await h.post(type, { identifier, endpoints: [ep], payload });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    return identifier;
  }

  async function output(type: string, identifier: string, ep = EP): Promise<{ lines: Line[]; finished: boolean; next_cursor: string }> {
    const res = await h.get(`${type}/${identifier}/responses/${ep}/output?limit=5000`);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json;
  }

  /**
   * The output once it holds `count` lines: the lines are sent before the result, but another collector
   * batch may commit them a moment after it.
   */
  async function settled(type: string, identifier: string, count: number, ep = EP): Promise<{ lines: Line[]; finished: boolean }> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const page = await output(type, identifier, ep);
      if (page.lines.length >= count || Date.now() > deadline) return page;
      await sleep(50);
    }
  }

  it('a command\'s lines arrive while it runs, and all are stored in order with stderr tagged', async function () {
    const id = await post('out-lines', { count: 20, gap: 100 });
    // Read before the result: some lines, the response still running.
    let early: Line[] = [];
    const deadline = Date.now() + 20_000;
    for (;;) {
      const page = await output('out-lines', id);
      if (page.lines.length >= 3) {
        const task = await h.get(`out-lines/${id}`);
        assert.notEqual(task.json.taskResponseList[0].state, 'succeeded', 'the lines came only with the result');
        assert.equal(page.finished, false);
        early = page.lines;
        break;
      }
      assert.ok(Date.now() < deadline, 'no output while the command ran');
      await sleep(50);
    }
    assert.ok(early.length < 24, `read ${early.length} lines before the end`);
    const done = await h.waitForStatus('out-lines', id, ['DONE'], 30_000);
    assert.equal(done.taskResponseList[0].errnr, 0);
    const all = await settled('out-lines', id, 24);
    assert.equal(all.finished, true);
    const stdout = all.lines.filter((l) => l.stream === 'stdout').map((l) => l.text);
    const stderr = all.lines.filter((l) => l.stream === 'stderr').map((l) => l.text);
    assert.deepEqual(stdout, Array.from({ length: 20 }, (_v, i) => `line ${i + 1}`));
    assert.deepEqual(stderr, ['err 5', 'err 10', 'err 15', 'err 20']);
    assert.deepEqual(all.lines.map((l) => l.seq), Array.from({ length: 24 }, (_v, i) => i + 1));
    assert.ok(all.lines.every((l) => l.attempt === 1));
    // What was read early is the start of it.
    assert.deepEqual(all.lines.slice(0, early.length), early);
    // A cursor gives the lines after it only.
    const rest = await h.get(`out-lines/${id}/responses/${EP}/output?cursor=${encodeURIComponent((await h.get(`out-lines/${id}/responses/${EP}/output?limit=10`)).json.next_cursor)}`);
    assert.deepEqual(rest.json.lines.map((l: Line) => l.seq), Array.from({ length: 14 }, (_v, i) => i + 11));
  });

  it('streams a finished response\'s lines as server-sent events, resuming after Last-Event-ID, then `end`', async function () {
    const id = await post('chatty', { lines: 4 });
    await h.waitForStatus('chatty', id, ['DONE'], 30_000);
    await settled('chatty', id, 7);
    const read = async (headers: Record<string, string>): Promise<{ id: string; event: string; data: any }[]> => {
      const res = await fetch(`${h.baseUrl}/chatty/${id}/responses/${EP}/output`, { headers: { accept: 'text/event-stream', ...headers } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const text = await res.text();
      return text.split('\n\n').filter((b) => b.includes('event: ')).map((b) => {
        const field = (name: string): string => (new RegExp(`^${name}: (.*)$`, 'm').exec(b) ?? ['', ''])[1];
        return { id: field('id'), event: field('event'), data: JSON.parse(field('data')) };
      });
    };
    const all = await read({});
    assert.deepEqual(all.map((e) => e.event), [...Array(7).fill('line'), 'end']);
    assert.deepEqual(all.slice(0, 7).map((e) => e.data.seq), [1, 2, 3, 4, 5, 6, 7]);
    const resumed = await read({ 'last-event-id': all[3].id });
    assert.deepEqual(resumed.filter((e) => e.event === 'line').map((e) => e.data.text), ['{ done: true }', 'two', 'lines']);
    assert.equal(resumed[resumed.length - 1].event, 'end');
  });

  it('streams more output than a stream may hold for its client, a part at a time, without disconnecting it', async function () {
    const id = await post('out-wide', { count: 80, width: 3900 });
    await h.waitForStatus('out-wide', id, ['DONE'], 30_000);
    const res = await fetch(`${h.baseUrl}/out-wide/${id}/responses/${EP}/output?follow=true`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(text.length > 4 * SSE_BUFFER, `${text.length} characters`);
    const lines = [...text.matchAll(/^event: line\ndata: (.*)$/gm)].map((m) => JSON.parse(m[1]).text as string);
    assert.deepEqual(lines.map((l) => l.length), Array(80).fill(3900));
    assert.deepEqual(lines.map((l) => Number.parseInt(l, 10)), Array.from({ length: 80 }, (_v, i) => i + 1));
    assert.match(text, /event: end\n/);
  });

  it('a module handler\'s response.log lines are stored as log lines', async function () {
    const id = await post('chatty', { lines: 3 });
    const done = await h.waitForStatus('chatty', id, ['DONE'], 30_000);
    assert.deepEqual(done.taskResponseList[0].payload, { logged: 3 });
    const all = await settled('chatty', id, 6);
    assert.deepEqual(all.lines.map((l) => [l.stream, l.text]),
      [['log', 'step 1 of 3'], ['log', 'step 2 of 3'], ['log', 'step 3 of 3'], ['log', '{ done: true }'], ['log', 'two'], ['log', 'lines']]);
  });

  it('keeps the first api.output_max_lines lines of a run and marks the cut', async function () {
    const id = await post('out-flood', { count: 300 });
    await h.waitForStatus('out-flood', id, ['DONE'], 30_000);
    const all = await settled('out-flood', id, SERVER_MAX + 1);
    assert.equal(all.lines.length, SERVER_MAX + 1);
    assert.deepEqual(all.lines.slice(0, SERVER_MAX).map((l) => l.text), Array.from({ length: SERVER_MAX }, (_v, i) => `x${i + 1}`));
    const marker = all.lines[SERVER_MAX];
    assert.equal(marker.stream, 'log');
    assert.match(marker.text, /after line 100 are not stored \(api\.output_max_lines\)/);
  });

  it('answers 404 for an unknown task, type or endpoint, and 400 naming a bad parameter', async function () {
    const id = await post('chatty', { lines: 1 });
    await h.waitForStatus('chatty', id, ['DONE'], 30_000);
    const unknownTask = await h.get(`chatty/no-such-task/responses/${EP}/output`);
    assert.equal(unknownTask.status, 404);
    assert.equal(unknownTask.json.error.code, 'not_found');
    const unknownEndpoint = await h.get(`chatty/${id}/responses/nobody/output`);
    assert.equal(unknownEndpoint.status, 404);
    assert.match(unknownEndpoint.json.error.message, /nobody/);
    assert.equal((await h.get(`no-such-type/${id}/responses/${EP}/output`)).status, 404);
    const badRound = await h.get(`chatty/${id}/responses/${EP}/output?round=-1`);
    assert.equal(badRound.status, 400);
    assert.match(badRound.json.error.message, /round/);
    const badCursor = await h.get(`chatty/${id}/responses/${EP}/output?cursor=xyz`);
    assert.equal(badCursor.status, 400);
    assert.match(badCursor.json.error.message, /cursor/);
    const unknownParam = await h.get(`chatty/${id}/responses/${EP}/output?tail=5`);
    assert.equal(unknownParam.status, 400);
    assert.match(unknownParam.json.error.message, /tail/);
  });

  it('`tasker logs --follow` prints lines as they are written and ends when the response finished', async function () {
    const id = await post('out-lines', { count: 15, gap: 150 });
    const started = Date.now();
    const child = spawn(NODE, [TASKER, 'logs', 'out-lines', id, '--endpoint', EP, '--follow'], {
      cwd: ROOT, env: { PATH: process.env.PATH, TASKER_URL: h.baseUrl }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const seen: { text: string; at: number }[] = [];
    let stderr = '';
    let buffered = '';
    child.stdout.on('data', (c: Buffer) => {
      buffered += c.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const text of parts) seen.push({ text, at: Date.now() - started });
    });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    const ended = Date.now() - started;
    assert.equal(code, 0, stderr);
    assert.deepEqual(seen.map((s) => s.text), Array.from({ length: 15 }, (_v, i) => `line ${i + 1}`));
    assert.equal(stderr, 'err 5\nerr 10\nerr 15\n');
    // Written over ~2 s: the first line was printed well before the last, not all at the end.
    assert.ok(seen[14].at - seen[0].at >= 1000, `lines printed at ${seen.map((s) => s.at).join(', ')}`);
    const task = await h.get(`out-lines/${id}`);
    assert.equal(task.json.taskResponseList[0].state, 'succeeded', `the CLI ended (after ${ended} ms) before the response finished`);
  });

  it('`tasker logs` without --follow prints each endpoint\'s stored lines', async function () {
    const id = await post('chatty', { lines: 2 });
    await h.waitForStatus('chatty', id, ['DONE'], 30_000);
    await settled('chatty', id, 5);
    const child = spawn(NODE, [TASKER, 'logs', 'chatty', id], { cwd: ROOT, env: { PATH: process.env.PATH, TASKER_URL: h.baseUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    assert.equal(await new Promise<number | null>((resolve) => child.once('close', resolve)), 0);
    assert.equal(stdout, 'step 1 of 2\nstep 2 of 2\n{ done: true }\ntwo\nlines\n');
  });

  if (backend === 'rabbitmq') {
    it('a manager sends at most manager.output_max_lines lines of a run, then one line saying how many it dropped', async function () {
      const id = await post('out-flood', { count: 80 }, EP_BOUNDED);
      await h.waitForStatus('out-flood', id, ['DONE'], 30_000);
      const all = await settled('out-flood', id, MANAGER_MAX + 1, EP_BOUNDED);
      assert.equal(all.lines.length, MANAGER_MAX + 1);
      assert.deepEqual(all.lines.slice(0, MANAGER_MAX).map((l) => l.text), Array.from({ length: MANAGER_MAX }, (_v, i) => `x${i + 1}`));
      assert.match(all.lines[MANAGER_MAX].text, /^\[tasker\] 30 more lines \(\d+ bytes\) not sent/);
    });

    it('`tasker logs --follow` at a terminal (tmux) shows the lines as they are written, then the prompt', async function () {
      await ensureDebianPackage('tmux', ['tmux', ['-V']]);
      // A tmux server of this run's own (-L), so that nothing else's sessions are touched.
      const tmux = (...args: string[]) => run('tmux', ['-L', `tasker-logs-${h.id}`, ...args]);
      await tmux('new-session', '-d', '-s', 'logs', '-x', '100', '-y', '40', '-c', ROOT, '-e', `TASKER_URL=${h.baseUrl}`, '-e', 'PS1=$ ', 'bash', '--norc', '--noprofile');
      try {
        const screen = async (): Promise<string> => (await tmux('capture-pane', '-p', '-t', 'logs')).stdout;
        const screenWhen = async (what: string, test: (s: string) => boolean): Promise<string> => {
          let last = '';
          for (let i = 0; i < 300; i++) {
            last = await screen();
            if (test(last)) return last;
            await sleep(50);
          }
          return assert.fail(`the screen never showed ${what}:\n${last}`);
        };
        await screenWhen('the prompt', (s) => s.includes('$'));
        const id = await post('out-lines', { count: 20, gap: 150 });
        await tmux('send-keys', '-t', 'logs', '-l', `node dist/cli/tasker.js logs out-lines ${id} --endpoint ${EP} --follow; echo EXIT=$?`);
        await tmux('send-keys', '-t', 'logs', 'Enter');
        const during = await screenWhen('some lines but not all', (s) => /^line 3$/m.test(s));
        assert.doesNotMatch(during, /^line 20$/m, `all lines at once:\n${during}`);
        assert.notEqual((await h.get(`out-lines/${id}`)).json.taskResponseList[0].state, 'succeeded');
        const end = await screenWhen('the exit status', (s) => /^EXIT=\d+$/m.test(s));
        assert.match(end, /^EXIT=0$/m);
        const shown = end.split('\n').filter((l) => /^(line|err) \d+$/.test(l));
        assert.deepEqual(shown.filter((l) => l.startsWith('line')), Array.from({ length: 20 }, (_v, i) => `line ${i + 1}`));
        assert.deepEqual(shown.filter((l) => l.startsWith('err')), ['err 5', 'err 10', 'err 15', 'err 20']);
      } finally {
        await tmux('kill-server').catch(() => undefined);
      }
    });

    it('refuses (dead-letters) an output event for an endpoint the task does not expect, and one that is not valid', async function () {
      const id = await post('chatty', { lines: 1 });
      const done = await h.waitForStatus('chatty', id, ['DONE'], 30_000);
      await settled('chatty', id, 4);
      const taskId = done.task.id as number;
      const t = new Date().toISOString();
      const dead = async (): Promise<number> => h.withChannel(async (ch) => (await ch.checkQueue(TOPOLOGY.deadLetter)).messageCount);
      const before = await dead();
      await h.withChannel(async (ch) => {
        const ex = TOPOLOGY.responsesExchange;
        const send = (body: unknown): void => { ch.publish(ex, 'event', Buffer.from(JSON.stringify(body)), { contentType: 'application/json', persistent: true }); };
        send({ kind: 'output', task_id: taskId, endpoint: 'stranger', attempt: 1, seq: 1, lines: [{ stream: 'stdout', text: 'x', t }] });
        send({ kind: 'output', task_id: taskId, endpoint: EP, attempt: 1, seq: 1, lines: [] });
        send({ kind: 'output', task_id: taskId, endpoint: EP, attempt: 1, seq: 1, lines: [{ stream: 'other', text: 'x', t }] });
        await ch.waitForConfirms();
      });
      const deadline = Date.now() + 15_000;
      while (await dead() < before + 3) {
        assert.ok(Date.now() < deadline, 'the bad output events were not dead-lettered');
        await sleep(100);
      }
      const rows = await h.query<{ n: number }>('SELECT COUNT(*) AS n FROM task_output WHERE task_id = ? AND endpoint = ?', [taskId, 'stranger']);
      assert.equal(Number(rows[0].n), 0);
      // The endpoint's own lines are untouched.
      assert.equal((await output('chatty', id)).lines.length, 4);
    });
  }
});
