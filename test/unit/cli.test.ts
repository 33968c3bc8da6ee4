import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { EXIT, taskExitReason, taskExitStatus } from '../../cli/exit-status';
import { ansi, bar, chooseEndpoints, fit, render, table, taskHeader, taskSummary, taskTable } from '../../cli/output';
import { endpointRowsFor, LineProgress, type ProgressView, TerminalProgress } from '../../cli/progress';
import { run } from '../../cli/program';
import { TaskTracker } from '../../cli/tracker';
import type { Counts, Task, TaskEvent, TaskStatus } from '../../cli/types';

const counts = (c: Partial<Counts> = {}): Counts => ({
  expected: 0, received: 0, finished: 0, pending: 0, running: 0, succeeded: 0, failed: 0, missing: 0, cancelled: 0, ...c,
});

function task(endpoints: string[], status: TaskStatus = 'SENT'): Task {
  return {
    id: 1, identifier: 'deploy-42', type: 'worker', status, payload: null, endpoints, start_time: '2026-11-24T10:00:00.000Z',
    sent_time: '2026-11-24T10:00:00.001Z', end_time: null, responses: counts({ expected: endpoints.length, pending: endpoints.length }),
  };
}

let nextId = 1;
const event = (kind: string, detail: Record<string, unknown> | null = null): TaskEvent => ({
  id: nextId++, task_id: 1, type: 'worker', identifier: 'deploy-42', time: '2026-11-24T10:00:01.000Z', kind, actor: null, detail,
});
const finished = (endpoint: string, errnr: number, errmsg: string | null = null, round = 0) => event('finished', { endpoints: [{ endpoint, round, attempt: 1, errnr, errmsg }] });
const received = (endpoint: string, round = 0) => event('received', { endpoints: [{ endpoint, round, attempt: 1 }] });

/** A stand-in for a terminal: what was written, and its size. */
class FakeScreen {
  text = '';
  constructor(public rows: number, public columns: number) {}
  write(s: string): void {
    this.text += s;
  }
}

/** What a terminal would show after these writes (only the cursor movements the live view uses). */
function screenOf(text: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  // eslint-disable-next-line no-control-regex
  for (const part of text.split(/(\x1b\[\d*[AJ]|\x1b\[[0-9;]*m|\r|\n)/)) {
    if (part === '') continue;
    // eslint-disable-next-line no-control-regex
    const up = /^\x1b\[(\d*)A$/.exec(part);
    if (up) row = Math.max(0, row - Number(up[1] || 1));
    else if (part === '\x1b[J') lines.splice(row, lines.length - row, '');
    else if (part.startsWith('\x1b[')) continue;
    else if (part === '\r') lines[row] = lines[row] ?? '';
    else if (part === '\n') {
      row++;
      lines[row] ??= '';
    } else lines[row] = (lines[row] ?? '') + part;
  }
  return lines.filter((l, i) => i < lines.length - 1 || l !== '');
}

describe('CLI: exit statuses', function () {
  it('0 when every endpoint succeeded, 2 when some failed, 3 for INCOMPLETE or CANCELLED whatever else happened', function () {
    assert.equal(taskExitStatus({ status: 'DONE', responses: { failed: 0 } }), EXIT.OK);
    assert.equal(taskExitStatus({ status: 'DONE', responses: { failed: 1 } }), EXIT.FAILED);
    assert.equal(taskExitStatus({ status: 'INCOMPLETE', responses: { failed: 0 } }), EXIT.UNFINISHED);
    assert.equal(taskExitStatus({ status: 'INCOMPLETE', responses: { failed: 3 } }), EXIT.UNFINISHED);
    assert.equal(taskExitStatus({ status: 'CANCELLED', responses: { failed: 0 } }), EXIT.UNFINISHED);
    // A task still running counts what is known so far.
    assert.equal(taskExitStatus({ status: 'SENT', responses: { failed: 0 } }), EXIT.OK);
    assert.equal(taskExitStatus({ status: 'SENT', responses: { failed: 2 } }), EXIT.FAILED);
    assert.deepEqual([EXIT.OK, EXIT.ERROR, EXIT.FAILED, EXIT.UNFINISHED], [0, 1, 2, 3]);
  });

  it('gives one line saying why, only when the status is not 0', function () {
    const t = { type: 'worker', identifier: 'deploy-42' };
    assert.equal(taskExitReason({ ...t, status: 'DONE', responses: counts({ expected: 2, succeeded: 2 }) }), null);
    assert.equal(taskExitReason({ ...t, status: 'INCOMPLETE', responses: counts({ expected: 3, succeeded: 1, failed: 1, missing: 1 }) }),
      'worker/deploy-42 is INCOMPLETE: 1 failed, 1 missing of 3 endpoints');
    assert.equal(taskExitReason({ ...t, status: 'DONE', responses: counts({ expected: 2, succeeded: 1, failed: 1 }) }),
      'worker/deploy-42 is DONE: 1 failed of 2 endpoints');
    assert.equal(taskExitReason({ ...t, status: 'CANCELLED', responses: counts({ expected: 2, succeeded: 2 }) }), 'worker/deploy-42 is CANCELLED');
  });
});

describe('CLI: following a task from its events', function () {
  it('moves each endpoint through its states as the server side does', function () {
    const t = new TaskTracker(task(['a', 'b', 'c']));
    assert.deepEqual(t.apply(received('a')).map((e) => e.endpoint), ['a']);
    assert.equal(t.shown(t.endpoints.get('a')!), 'running');
    t.apply(finished('a', 0));
    t.apply(finished('b', 7, 'failed as asked'));
    assert.deepEqual({ ...t.endpoints.get('b'), changed: 0 }, { endpoint: 'b', state: 'failed', round: 0, attempt: 1, errnr: 7, errmsg: 'failed as asked', changed: 0 });
    assert.equal(t.ended, false);
    const missing = t.apply(event('incomplete', { missing: 1 }));
    assert.deepEqual(missing.map((e) => e.endpoint), ['c']);
    assert.equal(t.status, 'INCOMPLETE');
    assert.equal(t.ended, true);
    const c = t.counts();
    assert.deepEqual([c.succeeded, c.failed, c.missing, c.pending, c.finished, c.expected], [1, 1, 1, 0, 2, 3]);
  });

  it('starts a new round on a retry, ignoring what is left of the old one, and ignores events it applied already', function () {
    const t = new TaskTracker(task(['a', 'b']));
    const late = received('a');
    t.apply(finished('a', 7, 'no'));
    t.apply(finished('b', 0));
    t.apply(event('done', { succeeded: 1, failed: 1 }));
    t.apply(event('retried', { endpoints: [{ endpoint: 'a', round: 1 }] }));
    assert.equal(t.status, 'CREATED');
    assert.deepEqual([t.endpoints.get('a')!.state, t.endpoints.get('a')!.round, t.endpoints.get('a')!.errnr], ['pending', 1, null]);
    assert.deepEqual(t.apply(late), [], 'an event older than the last one applied');
    t.apply(event('sent', { round: 1, targets: 1 }));
    t.apply(finished('a', 7, 'stale', 0));
    assert.equal(t.endpoints.get('a')!.state, 'pending', 'a result of round 0 after the retry');
    t.apply(finished('a', 0, null, 1));
    t.apply(event('done', { succeeded: 2, failed: 0 }));
    assert.deepEqual([t.status, t.counts().succeeded], ['DONE', 2]);
  });

  it('skips the endpoints that had not started when the task is cancelled; a task read with GET starts from its responses', function () {
    const t = new TaskTracker(task(['a', 'b']), [
      { endpoint: 'a', state: 'running', round: 0, status: 0, errnr: 0, errmsg: null, payload: null, attempts: 1, start_time: null, last_modified_time: '' },
    ]);
    assert.equal(t.endpoints.get('a')!.state, 'running');
    t.apply(event('cancelled', { cancelled: 1, running: 1 }));
    assert.deepEqual([t.status, t.endpoints.get('a')!.state, t.endpoints.get('b')!.state], ['CANCELLED', 'running', 'cancelled']);
  });
});

describe('CLI: output', function () {
  it('writes the API\'s answer as JSON or YAML that reads back the same, or as a table', function () {
    const data = { task: task(['a']), taskResponseList: [] };
    assert.deepEqual(JSON.parse(render('json', data, () => ['x'])), data);
    assert.deepEqual(YAML.parse(render('yaml', data, () => ['x'])), data);
    assert.equal(render('table', data, () => ['x', 'y']), 'x\ny\n');
  });

  it('aligns table columns on the widest cell, colour codes not counted', function () {
    assert.deepEqual(table(['A', 'LONGER', 'C'], [['xyz', ansi('red', 'r'), 'last'], ['q', 'rr', '']]), [
      'A    LONGER  C',
      `xyz  ${ansi('red', 'r')}       last`,
      'q    rr',
    ]);
  });

  it('cuts a line to the width without counting colour codes, and draws the bar of finished/expected', function () {
    assert.equal(fit('abcdefghij', 5), 'abcd…');
    assert.equal(fit('abc', 5), 'abc');
    const coloured = `${ansi('green', 'abcdef')}ghij`;
    assert.equal(fit(coloured, 20), coloured);
    // eslint-disable-next-line no-control-regex
    assert.equal(fit(coloured, 5).replace(/\x1b\[[0-9;]*m/g, ''), 'abcd…');
    assert.equal(bar(1, 4, 8), '[##......]');
    assert.equal(bar(0, 0, 4), '[####]');
  });

  it('shows a task with the error of each failed endpoint and the missing ones', function () {
    const t = new TaskTracker(task(['web1', 'web2', 'web3']));
    t.apply(finished('web1', 0));
    t.apply(finished('web2', 7, 'failed as asked'));
    t.apply(event('incomplete', { missing: 1 }));
    assert.deepEqual(taskTable(t), [
      'worker/deploy-42  INCOMPLETE  [####################..........] 2/3 finished',
      'pending 0  running 0  succeeded 1  failed 1  missing 1  cancelled 0',
      'ENDPOINT  STATE      ROUND  ATTEMPTS  ERRNR  RESULT',
      'web1      succeeded  0      1         0',
      'web2      failed     0      1         7      failed as asked',
      'web3      missing    0      0         -      never answered',
    ]);
    assert.equal(taskSummary(t), 'worker/deploy-42 INCOMPLETE: 2/3 finished (succeeded 1, failed 1, missing 1)');
    // A task as the API answers it (send, retry, cancel) is shown with the API's counts.
    const cancelled = { ...task(['web1', 'web2'], 'CANCELLED'), responses: counts({ expected: 2, received: 2, running: 2 }) };
    assert.deepEqual(taskHeader(cancelled), [
      'worker/deploy-42  CANCELLED  [..............................] 0/2 finished',
      'pending 0  running 2  succeeded 0  failed 0  missing 0  cancelled 0',
    ]);
  });

  it('shows a read result\'s payload on one line, cut at 100 characters', function () {
    const response = (endpoint: string, payload: unknown) => ({
      endpoint, state: 'succeeded' as const, round: 0, status: 1 as const, errnr: 0, errmsg: null, payload, attempts: 1,
      start_time: null, last_modified_time: '2026-11-24T10:00:01.000Z',
    });
    const long = { stdout: 'x'.repeat(200) };
    const t = new TaskTracker(task(['web1', 'web2', 'web3'], 'DONE'), [response('web1', { exit_code: 0, stdout: 'a\nb' }), response('web2', long), response('web3', null)]);
    const rows = taskTable(t).slice(3);
    assert.equal(rows[0], 'web1      succeeded  0      1         0      {"exit_code":0,"stdout":"a\\nb"}');
    assert.equal(rows[1], `web2      succeeded  0      1         0      ${JSON.stringify(long).slice(0, 99)}…`);
    assert.equal(rows[2], 'web3      succeeded  0      1         0');
  });

  it('for a fleet, shows the failed and the running first and sums up the rest on one line', function () {
    const names = Array.from({ length: 1000 }, (_v, i) => `ep${String(i).padStart(4, '0')}`);
    const t = new TaskTracker(task(names));
    for (const n of names.slice(0, 900)) t.apply(finished(n, 0));
    for (const n of ['ep0950', 'ep0960']) t.apply(finished(n, 3, 'disk full'));
    for (const n of ['ep0970', 'ep0980', 'ep0990']) t.apply(received(n));
    const { shown, rest } = chooseEndpoints(t, 10);
    assert.equal(shown.length, 9);
    // In the task's order, so that the lines stay where they are while they fit.
    assert.deepEqual(shown.map((e) => `${e.endpoint} ${t.shown(e)}`), [
      'ep0900 pending', 'ep0901 pending', 'ep0902 pending', 'ep0903 pending',
      'ep0950 failed', 'ep0960 failed', 'ep0970 running', 'ep0980 running', 'ep0990 running',
    ]);
    assert.equal(rest, '… and 991 more endpoints: 91 pending, 900 succeeded');
    assert.deepEqual(chooseEndpoints(t, 1000).rest, null);
  });
});

describe('CLI: live progress', function () {
  it('at a terminal, redraws one frame in place that fits the terminal, however many endpoints', function () {
    const names = Array.from({ length: 1000 }, (_v, i) => `endpoint-with-a-long-name-${i}`);
    const screen = new FakeScreen(12, 60);
    const view = new TerminalProgress(screen);
    const t = new TaskTracker(task(names));
    view.start(t);
    const first = screenOf(screen.text);
    assert.equal(first.length, 3 + endpointRowsFor(12));
    assert.ok(first.every((l) => l.length < 60), first.join('\n'));
    t.apply(finished(names[500], 9, 'a very long error message that does not fit on the line at all'));
    view.finish(t);
    const last = screenOf(screen.text);
    assert.equal(last.length, first.length, 'the second frame replaced the first');
    assert.match(last[0], /^worker\/deploy-42 {2}SENT {2}\[\.+\] 1\/1000 finished$/);
    assert.match(last.find((l) => l.startsWith('endpoint-with-a-long-name-500')) ?? '', /^endpoint-with-a-long-name-500 {2}failed .*…$/);
    assert.match(last[last.length - 1], /^… and 994 more endpoints: 994 pending$/);
    assert.ok(last.every((l) => l.length < 60), last.join('\n'));
  });

  it('elsewhere, writes a plain line per change and per change of status', function () {
    const screen = new FakeScreen(0, 0);
    const view: ProgressView = new LineProgress(screen);
    const t = new TaskTracker(task(['a', 'b']));
    view.start(t);
    for (const e of [received('a'), finished('a', 0), finished('b', 7, 'no')]) view.update(t, t.apply(e), e);
    const done = event('done', { succeeded: 1, failed: 1 });
    view.update(t, t.apply(done), done);
    assert.deepEqual(screen.text.split('\n'), [
      'worker/deploy-42 SENT: 0/2 finished (pending 2)',
      'worker/deploy-42 a running (attempt 1)',
      'worker/deploy-42 a succeeded',
      'worker/deploy-42 b failed errnr 7: no',
      'worker/deploy-42 DONE: 2/2 finished (succeeded 1, failed 1)',
      '',
    ]);
  });
});

describe('CLI: command line', function () {
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdout = new FakeScreen(0, 0);
    const stderr = new FakeScreen(0, 0);
    const code = await run(args, { stdout, stderr, color: false, readStdin: () => '{"from": "stdin"}' });
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  it('answers --help with the commands and examples (status 0)', async function () {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const word of ['send', 'get', 'list', 'watch', 'retry', 'cancel', 'endpoints', 'token', 'Examples:', '--output', 'TASKER_URL', 'TASKER_TOKEN']) {
      assert.ok(r.stdout.includes(word), word);
    }
    const send = await cli(['send', '--help']);
    assert.equal(send.code, 0);
    assert.match(send.stdout, /--wait/);
  });

  it('refuses bad usage with status 1 and one line on stderr', async function () {
    for (const args of [['get', 'worker'], ['bogus'], ['list', 'worker', '--status', 'NOPE'], ['get', 'worker', 'x', '--output', 'xml'],
      ['send', 'worker', '--payload', '{not json'], ['send', 'worker', '--payload', '@/nonexistent/file.json'], ['get', 'worker', 'x', '--url', 'not a url'],
      ['retry', 'worker', 'x'], ['token', 'create', 'x']]) {
      const r = await cli(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
      assert.match(r.stderr, /^tasker: [^\n]+\n$/, args.join(' '));
    }
  });

  it('says in one line (status 1) that the API cannot be reached', async function () {
    // A port that was just free: nothing listens there.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const r = await cli(['get', 'worker', 'x', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tasker: cannot reach the API at http://127.0.0.1:${port}: connection refused\n`);
  });

  it('is the package\'s `tasker` bin, run by node', function () {
    const root = path.join(__dirname, '..', '..', '..');
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    assert.equal(pkg.bin.tasker, 'dist/cli/tasker.js');
    assert.match(readFileSync(path.join(root, pkg.bin.tasker), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });
});
