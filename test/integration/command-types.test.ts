import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ERRNR_COMMAND_NOT_STARTED, ERRNR_COMMAND_SIGNALLED, ERRNR_COMMAND_TIMEOUT,
} from '../../protocol/wire';
import { Backend, Harness } from '../support/harness';
import { isAlive } from '../support/processes';

const NODE = process.execPath;
const FIXTURE = path.resolve(__dirname, '..', 'fixtures', 'command.js');
const TIMEOUT_S = 1;
const KILL_GRACE_S = 1;
/** What starting processes and reporting may add on this shared, loaded machine (2 cores, other suites). */
const SLACK_MS = 3000;
const TEN_MB = 10 * 1024 * 1024;
const str = (extra: Record<string, unknown> = {}) => ({ type: 'string', ...extra });
const schemaOf = (props: Record<string, unknown>) => ({ type: 'object', required: Object.keys(props), properties: props, additionalProperties: false });

const ROOT = process.getuid?.() === 0;

const TASK_TYPES = [
  'worker',
  { name: 'cmd-argv', command: [NODE, FIXTURE, 'argv', '{value}'], payload_schema: schemaOf({ value: str({ maxLength: 1000 }) }) },
  { name: 'cmd-strict', command: [NODE, FIXTURE, 'argv', '{version}'], payload_schema: schemaOf({ version: str({ pattern: '^[0-9.]+$' }) }) },
  {
    name: 'cmd-run', command: [NODE, FIXTURE, '{mode}', '{arg}'], timeout: 60,
    payload_schema: schemaOf({ mode: str({ enum: ['exit', 'flood', 'binary', 'signal', 'hang'] }), arg: str() }),
  },
  { name: 'cmd-hang', command: [NODE, FIXTURE, 'hang', '{pidfile}'], timeout: TIMEOUT_S, payload_schema: schemaOf({ pidfile: str() }) },
  { name: 'cmd-missing', command: ['/nonexistent/tasker-test-program', '--flag'] },
  // The fixture's compiled file has no execute bit (for root neither).
  { name: 'cmd-noexec', command: [FIXTURE, 'argv', 'x'] },
  { name: 'cmd-env', command: [NODE, '-e', 'process.stdout.write(JSON.stringify(process.env))'], env: ['PATH', 'TASKER_TEST_VISIBLE'] },
  { name: 'cmd-shell', shell: true, command: ['echo "$0" | tr a-z A-Z; exit 7'] },
  { name: 'cmd-background', shell: true, timeout: 30, command: ['sleep 30 & echo $!'] },
  { name: 'cmd-cwd', command: [NODE, '-e', 'process.stdout.write(process.cwd())'], cwd: '/tmp' },
  // Running as another user needs a root manager: where the suite is not root, the type is not declared.
  ...ROOT ? [{ name: 'cmd-user', command: [NODE, '-e', 'process.stdout.write(JSON.stringify([process.getuid(), process.getgid()]))'], user: 'nobody' }] : [],
];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Command task types end to end: one manager serving several command types (and the module type `worker`),
 * over RabbitMQ (a manager process of its own) and in the standalone process, the API refusing payloads
 * that fail a type's schema, and the results read back.
 */
for (const backend of ['rabbitmq', 'standalone'] as Backend[]) describe(`command task types (${backend})`, function () {
  const h = new Harness({
    backend,
    env: {
      // The modes' own endpoints name task types this suite does not have; startSystem sets the suite's.
      TASKER_TASK_TYPES: JSON.stringify(TASK_TYPES), TASKER_MANAGER__ENDPOINTS: '[]', TASKER_MANAGER__KILL_GRACE: String(KILL_GRACE_S), TASKER_TEST_VISIBLE: 'seen',
    },
  });
  const EP = 'cmd1';
  let tmp = '';

  before(async function () {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'tasker-command-'));
    await h.setup(this);
    const names = TASK_TYPES.map((t) => (typeof t === 'string' ? t : t.name));
    await h.startSystem([{ name: EP, task_types: names }]);
  });

  after(async function () {
    await h.teardown();
    rmSync(tmp, { recursive: true, force: true });
  });

  let n = 0;
  /** Creates a task for the one endpoint and returns its one response once the task ended. */
  async function run(type: string, payload: unknown): Promise<{ errnr: number; errmsg: string | null; payload: any; state: string }> {
    const identifier = `${type}-${++n}`;
    const res = await h.post(type, { identifier, endpoints: [EP], payload });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const done = await h.waitForStatus(type, identifier, ['DONE', 'INCOMPLETE'], 60_000);
    assert.equal(done.task.status, 'DONE', JSON.stringify(done));
    return done.taskResponseList[0];
  }

  it('runs a command: exit code 0 is success, its output and byte counts in the payload', async function () {
    const r = await run('cmd-argv', { value: 'hello' });
    assert.equal(r.state, 'succeeded');
    assert.equal(r.errnr, 0);
    assert.equal(r.errmsg, null);
    assert.deepEqual(r.payload, {
      exit_code: 0, signal: null, stdout: '["hello"]', stderr: '', stdout_bytes: 9, stderr_bytes: 0, truncated: { stdout: false, stderr: false },
    });
  });

  it('passes each payload value as one literal argument, never through a shell', async function () {
    const values = ['; rm -rf /', '$(id)', '`id`', '--help', '-rf', 'line1\nline2\n', '', '  spaced  ', '"quoted" \'too\'', '*', '{value}', 'é😀'];
    const results = await Promise.all(values.map((value) => run('cmd-argv', { value })));
    results.forEach((r, i) => {
      assert.equal(r.errnr, 0, JSON.stringify(r));
      assert.deepEqual(JSON.parse(r.payload.stdout), [values[i]], `value ${JSON.stringify(values[i])}`);
    });
  });

  it('refuses at POST a payload that fails the type\'s schema, naming the field, and stores nothing', async function () {
    for (const [i, payload] of [{ version: '; rm -rf /' }, { version: '$(id)' }, { version: '--help' }, { version: 'a\nb' }, {}, { version: 1 }, { version: '1', more: 'x' }, null].entries()) {
      const res = await h.post('cmd-strict', { identifier: `strict-bad-${i}`, endpoints: [EP], payload });
      assert.equal(res.status, 400, `${JSON.stringify(payload)}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error.code, 'invalid_request');
      assert.match(res.json.error.message, /^payload/, JSON.stringify(res.json));
    }
    const missing = await h.post('cmd-strict', { identifier: 'strict-bad-x', endpoints: [EP], payload: {} });
    assert.equal(missing.json.error.message, 'payload.version is required');
    const stored = await h.query<{ n: number }>(`SELECT COUNT(*) AS n FROM task WHERE identifier LIKE 'strict-bad-%'`);
    assert.equal(Number(stored[0].n), 0);
    // A good one runs.
    const ok = await run('cmd-strict', { version: '1.2.3' });
    assert.equal(ok.errnr, 0);
    assert.deepEqual(JSON.parse(ok.payload.stdout), ['1.2.3']);
  });

  it('refuses a schedule whose payload fails its command type\'s schema, when created or changed', async function () {
    const bad = await h.post('schedules', { name: 'strict-bad', task_type: 'cmd-strict', every: '1h', paused: true, payload: { version: '$(id)' } });
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.match(bad.json.error.message, /^payload\.version must match pattern/);
    assert.equal((await h.get('schedules/strict-bad')).status, 404);
    const good = await h.post('schedules', { name: 'strict-good', task_type: 'cmd-strict', every: '1h', paused: true, payload: { version: '1.0' } });
    assert.equal(good.status, 201, JSON.stringify(good.json));
    const patch = await fetch(`${h.baseUrl}/schedules/strict-good`, {
      method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payload: { version: '1.0 --help' } }),
    });
    assert.equal(patch.status, 400);
    assert.deepEqual((await h.get('schedules/strict-good')).json.payload, { version: '1.0' }, 'unchanged');
  });

  it('reports a non-zero exit code as the errnr, with the last line of stderr', async function () {
    const r = await run('cmd-run', { mode: 'exit', arg: '3' });
    assert.equal(r.state, 'failed');
    assert.equal(r.errnr, 3);
    assert.equal(r.errmsg, 'exited with code 3: failing on purpose');
    assert.equal(r.payload.exit_code, 3);
    assert.equal(r.payload.signal, null);
    assert.equal(r.payload.stderr, 'about to fail\nfailing on purpose\n');
  });

  it('reports a command killed by a signal with its own errnr', async function () {
    const r = await run('cmd-run', { mode: 'signal', arg: 'SIGSEGV' });
    assert.equal(r.errnr, ERRNR_COMMAND_SIGNALLED);
    assert.equal(r.errmsg, 'killed by SIGSEGV');
    assert.equal(r.payload.exit_code, null);
    assert.equal(r.payload.signal, 'SIGSEGV');
  });

  it('reports a missing executable, or one that is not executable, with its own errnr', async function () {
    const r = await run('cmd-missing', null);
    assert.equal(r.state, 'failed');
    assert.equal(r.errnr, ERRNR_COMMAND_NOT_STARTED);
    assert.match(r.errmsg ?? '', /could not start \/nonexistent\/tasker-test-program: ENOENT/);
    const noexec = await run('cmd-noexec', null);
    assert.equal(noexec.errnr, ERRNR_COMMAND_NOT_STARTED);
    assert.match(noexec.errmsg ?? '', /: EACCES: .* is not executable/);
  });

  it('keeps the last output_limit characters of 10 MB of output, and counts every byte', async function () {
    const r = await run('cmd-run', { mode: 'flood', arg: String(TEN_MB) });
    assert.equal(r.errnr, 0, JSON.stringify(r.errmsg));
    assert.equal(r.payload.stdout_bytes, TEN_MB);
    assert.equal(r.payload.stdout.length, 24_000);
    assert.ok(r.payload.stdout.endsWith('xxxEND'));
    assert.deepEqual(r.payload.truncated, { stdout: true, stderr: false });
    assert.equal(r.payload.stderr, 'err');
    assert.equal(r.payload.stderr_bytes, 3);
  });

  it('decodes binary output as UTF-8 with replacement characters', async function () {
    const r = await run('cmd-run', { mode: 'binary', arg: '' });
    assert.equal(r.errnr, 0);
    assert.equal(r.payload.stdout_bytes, 256);
    const expected = Array.from({ length: 256 }, (_, i) => (i < 0x80 ? String.fromCharCode(i) : '\ufffd')).join('');
    assert.equal(r.payload.stdout, expected);
  });

  it('passes only the allowed environment variables', async function () {
    const r = await run('cmd-env', null);
    const env = JSON.parse(r.payload.stdout) as Record<string, string>;
    assert.equal(env.TASKER_TEST_VISIBLE, 'seen');
    assert.ok(env.PATH);
    assert.equal(env.TASKER_TEST_ID, undefined, 'a variable of the manager that is not allowed');
    assert.deepEqual(Object.keys(env).sort(), ['PATH', 'TASKER_TEST_VISIBLE']);
  });

  it('ends what a command left running in its group when it exits, rather than wait for it', async function () {
    const started = Date.now();
    const r = await run('cmd-background', null);
    assert.equal(r.errnr, 0, JSON.stringify(r));
    const sleeper = Number(r.payload.stdout.trim());
    assert.ok(sleeper > 0, JSON.stringify(r.payload));
    assert.ok(Date.now() - started < 10_000, 'the run waited for its background job');
    for (const until = Date.now() + 2000; isAlive(sleeper); await sleep(20)) assert.ok(Date.now() < until, `background job ${sleeper} outlived its run`);
  });

  it('runs a command in its cwd, and as its user', async function () {
    const r = await run('cmd-cwd', null);
    assert.equal(r.payload.stdout, '/tmp');
    if (!ROOT) return;
    const nobody = await run('cmd-user', null);
    const ids = (flag: string): number => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim());
    assert.deepEqual(JSON.parse(nobody.payload.stdout), [ids('-u'), ids('-g')]);
  });

  if (backend === 'rabbitmq') it('refuses to start a manager with a bad command type, or a user it cannot run as, naming the key', async function () {
    const bad = [
      [{ name: 'bad', command: [NODE, '--version={v}'] }, /config key 'task_types\[1\]\.command\[1\]': .*whole argument/],
      [{ name: 'bad', command: [NODE, '{v}'], payload_schema: { type: 'object', properties: { w: { type: 'string' } } } }, /config key 'task_types\[1\]\.command\[1\]': placeholder \{v\}: payload_schema has no property 'v'/],
      [{ name: 'bad', command: [NODE], user: 'no-such-user-tasker' }, /task type 'bad': user 'no-such-user-tasker' does not exist/],
    ] as const;
    for (const [entry, message] of bad) {
      const p = h.spawnManager('bad1', [], { TASKER_TASK_TYPES: JSON.stringify(['worker', entry]) });
      const code = await p.exited;
      assert.notEqual(code, 0, JSON.stringify(entry));
      assert.match(p.raw.join('\n'), message);
    }
  });

  it('runs a shell: true command through /bin/sh -c as written', async function () {
    const r = await run('cmd-shell', null);
    assert.equal(r.errnr, 7);
    assert.equal(r.payload.stdout, '/BIN/SH\n');
  });

  it('kills the process group of a command that outlives its timeout within timeout + kill_grace', async function () {
    const pidfile = path.join(tmp, 'hang.json');
    const identifier = 'hang-1';
    const res = await h.post('cmd-hang', { identifier, endpoints: [EP], payload: { pidfile } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    let started = Date.now();
    while (!existsSync(pidfile) || readFileSync(pidfile, 'utf8') === '') {
      assert.ok(Date.now() - started < 30_000, 'the command never started');
      await sleep(20);
    }
    started = Date.now();
    const { pid, child } = JSON.parse(readFileSync(pidfile, 'utf8')) as { pid: number; child: number };
    assert.ok(isAlive(pid) && isAlive(child), 'both were running');
    // Both ignore SIGTERM: only the SIGKILL of the group after the grace ends them.
    const limit = (TIMEOUT_S + KILL_GRACE_S) * 1000 + SLACK_MS;
    while (isAlive(pid) || isAlive(child)) {
      assert.ok(Date.now() - started < limit, `pid ${pid} or ${child} still alive ${Date.now() - started} ms after the command started`);
      await sleep(20);
    }
    const gone = Date.now() - started;
    assert.ok(gone >= TIMEOUT_S * 1000 + KILL_GRACE_S * 1000 - 500, `gone after ${gone} ms: before the grace was over`);
    const done = await h.waitForStatus('cmd-hang', identifier, ['DONE'], 30_000);
    const r = done.taskResponseList[0];
    assert.equal(r.errnr, ERRNR_COMMAND_TIMEOUT);
    assert.equal(r.failure, 'timed_out');
    assert.match(r.errmsg, /timed out after 1 s/);
    assert.equal(r.payload.signal, 'SIGKILL');
  });

  if (backend === 'rabbitmq') it('kills a running command when its manager shuts down, and leaves its task to be handed out again', async function () {
    const manager = await h.startManager('cmd2', ['cmd-run'], { TASKER_MANAGER__SHUTDOWN_TIMEOUT: '1' });
    const pidfile = path.join(tmp, 'shutdown.json');
    const res = await h.post('cmd-run', { identifier: 'shutdown-1', endpoints: ['cmd2'], payload: { mode: 'hang', arg: pidfile } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    for (const until = Date.now() + 30_000; !existsSync(pidfile) || readFileSync(pidfile, 'utf8') === ''; await sleep(20)) {
      assert.ok(Date.now() < until, 'the command never started');
    }
    const { pid, child } = JSON.parse(readFileSync(pidfile, 'utf8')) as { pid: number; child: number };
    assert.ok(isAlive(pid) && isAlive(child));
    const stopping = Date.now();
    assert.equal(await manager.stop(), 0, 'the manager exits cleanly');
    const took = Date.now() - stopping;
    assert.ok(took < 1000 + 2000 + SLACK_MS, `shutdown took ${took} ms`);
    for (const until = Date.now() + 2000; isAlive(pid) || isAlive(child); await sleep(20)) {
      assert.ok(Date.now() < until, `pid ${pid} or ${child} outlived its manager`);
    }
    // No result was reported: the response is still running, for the next manager of cmd2 to run again.
    const { json } = await h.get('cmd-run/shutdown-1');
    const r = json.taskResponseList[0];
    assert.equal(r.state, 'running', JSON.stringify(r));
    assert.equal(r.errnr, 0);
    assert.equal(manager.lines.filter((l) => /could not process/.test(String(l.msg))).length, 0);
  });

  it('kills the process group of a running command when its task is cancelled', async function () {
    const pidfile = path.join(tmp, 'cancel.json');
    const res = await h.post('cmd-run', { identifier: 'cancel-1', endpoints: [EP], payload: { mode: 'hang', arg: pidfile } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    for (const until = Date.now() + 30_000; !existsSync(pidfile) || readFileSync(pidfile, 'utf8') === ''; await sleep(20)) {
      assert.ok(Date.now() < until, 'the command never started');
    }
    const { pid, child } = JSON.parse(readFileSync(pidfile, 'utf8')) as { pid: number; child: number };
    assert.ok(isAlive(pid) && isAlive(child));
    // Known to be running (its receipt stored), so that the cancel reaches a run rather than a queued copy.
    for (const until = Date.now() + 10_000; (await h.get('cmd-run/cancel-1')).json.task.responses.running !== 1; await sleep(50)) {
      assert.ok(Date.now() < until, 'never shown running');
    }
    const cancelling = Date.now();
    const cancelled = await h.post('cmd-run/cancel-1/cancel', '{}');
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));
    // Both ignore SIGTERM: the SIGKILL after the grace ends them.
    for (const limit = KILL_GRACE_S * 1000 + SLACK_MS; isAlive(pid) || isAlive(child); await sleep(20)) {
      assert.ok(Date.now() - cancelling < limit, `pid ${pid} or ${child} still alive ${Date.now() - cancelling} ms after the cancel`);
    }
    let r: any;
    for (const until = Date.now() + 10_000; (r = (await h.get('cmd-run/cancel-1')).json.taskResponseList[0]).state === 'running'; await sleep(50)) {
      assert.ok(Date.now() < until, 'the killed run never reported');
    }
    assert.equal(r.errnr, ERRNR_COMMAND_SIGNALLED, JSON.stringify(r));
    assert.equal(r.errmsg, 'killed by SIGKILL (cancelled)');
    assert.equal(r.payload.signal, 'SIGKILL');
  });

  it('keeps module task types working beside command types', async function () {
    const r = await run('worker', { sleep: 0 });
    assert.equal(r.errnr, 0);
    assert.deepEqual(r.payload, { yeah: 1234123, yiya: 'yippie' });
  });

  it('reports both handler kinds among the endpoint\'s facts', async function () {
    const ep = (await h.get('endpoints')).json.endpoints.find((e: any) => e.name === EP);
    assert.deepEqual(ep.facts.handler_kinds, ['command', 'module']);
    assert.equal(ep.facts.task_types.length, TASK_TYPES.length);
  });
});
