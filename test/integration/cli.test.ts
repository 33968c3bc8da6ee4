import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { projectRoot } from '../../config/loader';
import { ensureDebianPackage } from '../support/debian';
import { freePort, Harness } from '../support/harness';

const ROOT = projectRoot();
const TASKER = path.join(ROOT, 'dist', 'cli', 'tasker.js');
const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Ran { code: number; stdout: string; stderr: string }

/**
 * The `tasker` CLI as a person and a CI pipeline use it, against the real API and endpoint managers
 * (RabbitMQ + MariaDB, api.auth: tokens): ep1 and ep2 are up, ep3 is listed in tasks but down. The `flaky`
 * handler fails on the endpoints named in `payload.fail` (round 0 only).
 */
describe('the tasker CLI (RabbitMQ + MariaDB, real processes)', function () {
  const h = new Harness({
    waitTimeout: 5,
    env: { TASKER_TASK_TYPES: '[worker, backup, flaky]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers', TASKER_API__AUTH: 'tokens', TASKER_API__AUTH_CACHE: '0.5' },
  });
  let admin = '';

  /** Runs the CLI to its end, as a pipeline step would: not at a terminal, with the environment given. */
  function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [TASKER, ...args], {
        cwd: ROOT, env: { PATH: process.env.PATH, TASKER_URL: h.baseUrl, TASKER_TOKEN: admin, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

  before(async function () {
    await h.setup(this);
    await h.startApi();
    await h.startManager(['ep1', 'ep2'], ['worker', 'flaky']);
    const { code, output } = await h.runScript('token.js', ['create', 'ops', '--scope', 'admin']);
    assert.equal(code, 0, output);
    admin = /tkr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(output)?.[0] ?? '';
    assert.ok(admin, output);
  });

  after(async function () {
    await h.teardown();
  });

  it('exits 0 when every endpoint succeeded, with the task as JSON on stdout and a line per change on stderr', async function () {
    const r = await cli(['send', 'flaky', '--identifier', 'ok-1', '--payload', '{"sleep": 0.3}', '--endpoints', 'ep1,ep2', '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.task.status, 'DONE');
    assert.deepEqual(out.taskResponseList.map((x: any) => `${x.endpoint} ${x.state}`).sort(), ['ep1 succeeded', 'ep2 succeeded']);
    const err = lines(r.stderr);
    assert.match(err[0], /^flaky\/ok-1 (SENT|DONE): \d\/2 finished \(/);
    for (const ep of ['ep1', 'ep2']) assert.ok(err.includes(`flaky/ok-1 ${ep} succeeded`), r.stderr);
    assert.equal(err[err.length - 1], 'flaky/ok-1 DONE: 2/2 finished (succeeded 2)');
    assert.ok(!r.stderr.includes('tasker:'), 'no reason line when the status is 0');
  });

  it('send --timeout bounds the run: the deadline ends it INCOMPLETE (exit 3), the running endpoint timed_out; get shows the timeout', async function () {
    // A worker task: the flaky ones are counted by the tests below.
    const r = await cli(['send', 'worker', '--identifier', 'bounded-1', '--payload', '{"sleep": 60}', '--endpoints', 'ep1', '--timeout', '2', '--wait']);
    assert.equal(r.code, 3, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual([out.task.status, out.task.timeout], ['INCOMPLETE', 2]);
    assert.equal(Date.parse(out.task.deadline) - Date.parse(out.task.sent_time), 2000);
    assert.deepEqual([out.taskResponseList[0].state, out.taskResponseList[0].failure, out.taskResponseList[0].errnr], ['failed', 'timed_out', 127]);
    const table = await cli(['get', 'worker', 'bounded-1', '-o', 'table']);
    assert.equal(table.code, 3);
    assert.ok(lines(table.stdout).includes(`timeout: 2 s, deadline ${out.task.deadline}`), table.stdout);
    assert.match(table.stdout, /ep1\s+failed\s+0\s+1\s+127\s+timed_out/);
    const bad = await cli(['send', 'worker', '--timeout', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /timeout.*must be a whole number of seconds from 1 to 2592000/);
  });

  it('exits 2 when some endpoint failed (one line saying so on stderr); a retry of the failed ones exits 0', async function () {
    const r = await cli(['send', 'flaky', '--identifier', 'fail-1', '--payload', '{"sleep": 0, "fail": ["ep2"]}', '--endpoints', 'ep1,ep2', '--wait']);
    assert.equal(r.code, 2, r.stderr);
    const out = JSON.parse(r.stdout);
    const ep2 = out.taskResponseList.find((x: any) => x.endpoint === 'ep2');
    assert.deepEqual([out.task.status, ep2.state, ep2.errnr, ep2.errmsg], ['DONE', 'failed', 7, 'failed as asked']);
    assert.ok(r.stderr.includes('flaky/fail-1 ep2 failed errnr 7: failed as asked'), r.stderr);
    assert.equal(lines(r.stderr).pop(), 'tasker: flaky/fail-1 is DONE: 1 failed of 2 endpoints');

    const retried = await cli(['retry', 'flaky', 'fail-1', '--endpoints', 'failed', '--wait', '--output', 'yaml']);
    assert.equal(retried.code, 0, retried.stderr);
    const after = YAML.parse(retried.stdout);
    assert.equal(after.task.status, 'DONE');
    assert.deepEqual(after.taskResponseList.map((x: any) => `${x.endpoint} ${x.state} ${x.round}`).sort(), ['ep1 succeeded 0', 'ep2 succeeded 1']);
    assert.ok(retried.stderr.includes('flaky/fail-1 ep2 succeeded (round 1)'), retried.stderr);
  });

  it('exits 3 when the task goes INCOMPLETE (an endpoint that is down), from send --wait, get and watch', async function () {
    const r = await cli(['send', 'flaky', '--identifier', 'inc-1', '--payload', '{"sleep": 0}', '--endpoints', 'ep1,ep2,ep3', '--wait']);
    assert.equal(r.code, 3, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.task.status, 'INCOMPLETE');
    assert.equal(out.taskResponseList.find((x: any) => x.endpoint === 'ep3').state, 'missing');
    assert.ok(r.stderr.includes('flaky/inc-1 ep3 missing'), r.stderr);
    assert.equal(lines(r.stderr).pop(), 'tasker: flaky/inc-1 is INCOMPLETE: 1 missing of 3 endpoints');

    const got = await cli(['get', 'flaky', 'inc-1', '--output', 'table']);
    assert.equal(got.code, 3);
    assert.match(got.stdout, /^flaky\/inc-1 {2}INCOMPLETE {2}\[#+\.+\] 2\/3 finished$/m);
    assert.match(got.stdout, /^ep3 +missing +0 +0 +- +never answered$/m);
    const watched = await cli(['watch', 'flaky', 'inc-1']);
    assert.equal(watched.code, 3, 'a task that already ended: its status at once');

    const listed = await cli(['list', 'flaky', '--status', 'INCOMPLETE']);
    assert.equal(listed.code, 0);
    assert.deepEqual(JSON.parse(listed.stdout).tasks.map((t: any) => t.identifier), ['inc-1']);
  });

  it('watch follows a task live to its cancel (exit 3); endpoints lists the registry', async function () {
    const sent = await cli(['send', 'worker', '--identifier', 'long-1', '--payload', '{"sleep": 30}', '--endpoints', 'ep1,ep3']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(JSON.parse(sent.stdout).status, 'SENT');
    const watching = cli(['watch', 'worker', 'long-1']);
    // Cancelled once the watcher has seen ep1 start, from the stream.
    for (let i = 0; i < 100; i++) {
      const got = await cli(['get', 'worker', 'long-1']);
      if (JSON.parse(got.stdout).task.responses.running > 0) break;
      await sleep(100);
    }
    const cancelled = await cli(['cancel', 'worker', 'long-1', '--output', 'table']);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /^worker\/long-1 {2}CANCELLED /m);
    const w = await watching;
    assert.equal(w.code, 3, w.stderr);
    assert.ok(w.stderr.includes('worker/long-1 ep1 running'), w.stderr);
    assert.ok(w.stderr.includes('worker/long-1 CANCELLED'), w.stderr);
    assert.equal(JSON.parse(w.stdout).task.status, 'CANCELLED');

    const eps = await cli(['endpoints']);
    assert.equal(eps.code, 0);
    assert.deepEqual(JSON.parse(eps.stdout).endpoints.map((e: any) => `${e.name} ${e.alive}`), ['ep1 true', 'ep2 true']);
  });

  it('exits 1 with a one-line reason: no token or a bad one (401), a missing scope (403), an API that is not there, bad usage', async function () {
    const none = await cli(['get', 'flaky', 'ok-1'], { TASKER_TOKEN: undefined });
    assert.equal(none.code, 1);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /^tasker: GET \/flaky\/ok-1: 401 unauthorized: .* \(give one with --token or TASKER_TOKEN\)\n$/);
    const bad = await cli(['get', 'flaky', 'ok-1', '--token', `tkr_0123456789abcdef_${'x'.repeat(43)}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^tasker: GET \/flaky\/ok-1: 401 unauthorized: .*\(the token given was refused\)\n$/);

    const port = await freePort();
    const refused = await cli(['endpoints', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, `tasker: cannot reach the API at http://127.0.0.1:${port}: connection refused\n`);
    const usage = await cli(['send']);
    assert.equal(usage.code, 1);
    assert.equal(usage.stderr, 'tasker: missing required argument \'type\'\n');
    const unknown = await cli(['get', 'flaky', 'no-such-task']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^tasker: GET \/flaky\/no-such-task: 404 not_found: [^\n]+\n$/);
  });

  it('npm run token takes scopes separated by commas as well as repeated', async function () {
    const { code, output } = await h.runScript('token.js', ['create', 'pair', '--scope', 'read, operate', '--scope', 'submit:worker']);
    assert.equal(code, 0, output);
    assert.match(output, /token 'pair' \(read, operate, submit:worker\)/);
    const listed = await h.runScript('token.js', ['list']);
    assert.match(listed.output, /^pair\s+read,operate,submit:worker\s/m);
  });

  it('manages tokens: create (the secret shown once), use within its scope only, list, revoke', async function () {
    const created = await cli(['token', 'create', 'reader', '--scope', 'read']);
    assert.equal(created.code, 0, created.stderr);
    const { token, scopes } = JSON.parse(created.stdout);
    assert.deepEqual(scopes, ['read']);
    const read = await cli(['get', 'flaky', 'ok-1'], { TASKER_TOKEN: token });
    assert.equal(read.code, 0, read.stderr);
    const send = await cli(['send', 'flaky', '--endpoints', 'ep1'], { TASKER_TOKEN: token });
    assert.equal(send.code, 1);
    assert.match(send.stderr, /^tasker: POST \/flaky: 403 forbidden: this token lacks the scope 'submit:flaky'\n$/);

    const listed = await cli(['token', 'list', '--output', 'table']);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, /^reader +read +\S+ \S+ +\S+ \S+ +-$/m);
    const revoked = await cli(['token', 'revoke', 'reader']);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.notEqual(JSON.parse(revoked.stdout).revoked_time, null);
  });

  it('manages schedules: create (a 400 naming the field), list with the next firing, get, pause, resume, delete', async function () {
    const bad = await cli(['schedule', 'create', 'hourly', '--type', 'worker', '--cron', '0 * * *']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^tasker: POST \/schedules: 400 invalid_request: cron: /);
    const made = await cli(['schedule', 'create', 'hourly', '--type', 'worker', '--cron', '0 * * * *', '--timezone', 'Asia/Kolkata',
      '--payload', '{"sleep": 0}', '--endpoints', 'ep1']);
    assert.equal(made.code, 0, made.stderr);
    const s = JSON.parse(made.stdout);
    assert.deepEqual([s.name, s.task_type, s.cron, s.timezone, s.endpoints, s.paused], ['hourly', 'worker', '0 * * * *', 'Asia/Kolkata', ['ep1'], false]);
    // Kolkata is UTC+05:30: its full hours are half past in UTC.
    assert.match(s.next_fire_time, /^\d{4}-\d\d-\d\dT\d\d:30:00\.000Z$/);
    const listed = await cli(['schedule', 'list', '--output', 'table']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^NAME +TYPE +WHEN +TIMEZONE +NEXT FIRING +PAUSED +LAST TASK +LAST ERROR$/m);
    assert.match(listed.stdout, /^hourly +worker +0 \* \* \* \* +Asia\/Kolkata +\d{4}-\d\d-\d\d \d\d:30:00Z +no +- +-$/m);
    const paused = await cli(['schedule', 'pause', 'hourly']);
    assert.equal(paused.code, 0, paused.stderr);
    assert.deepEqual([JSON.parse(paused.stdout).paused, JSON.parse(paused.stdout).next_fire_time], [true, null]);
    assert.equal(JSON.parse((await cli(['schedule', 'get', 'hourly'])).stdout).paused, true);
    const resumed = await cli(['schedule', 'resume', 'hourly', '--output', 'yaml']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(YAML.parse(resumed.stdout).next_fire_time, /^\d{4}-\d\d-\d\dT\d\d:30:00\.000Z$/);
    const changed = await cli(['schedule', 'update', 'hourly', '--every', '90m']);
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual([JSON.parse(changed.stdout).cron, JSON.parse(changed.stdout).every], [null, '90m']);
    assert.equal((await cli(['schedule', 'delete', 'hourly'])).code, 0);
    const gone = await cli(['schedule', 'get', 'hourly']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /404 not_found: no schedule named 'hourly'/);
  });

  describe('at a terminal (tmux): a task to three endpoints, one failing and one down', function () {
    // A tmux server of this run's own (-L), so that nothing else's sessions are touched.
    const socket = `tasker-cli-${h.id}`;
    const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]);
    const screen = async (): Promise<string> => (await tmux('capture-pane', '-p', '-t', 'cli')).stdout;

    /** The screen once it shows what `test` wants (polled); fails with the last screen if it never does. */
    async function screenWhen(what: string, test: (s: string) => boolean): Promise<string> {
      let last = '';
      for (let i = 0; i < 300; i++) {
        last = await screen();
        if (test(last)) return last;
        await sleep(100);
      }
      assert.fail(`the screen never showed ${what}:\n${last}`);
    }

    before(async function () {
      await ensureDebianPackage('tmux', ['tmux', ['-V']]);
      await tmux('new-session', '-d', '-s', 'cli', '-x', '120', '-y', '40', '-c', ROOT,
        '-e', `TASKER_URL=${h.baseUrl}`, '-e', `TASKER_TOKEN=${admin}`, '-e', 'PS1=$ ', 'bash', '--norc', '--noprofile');
    });

    after(async function () {
      await tmux('kill-server').catch(() => undefined);
    });

    it('shows the progress live, redrawn in place, then the result, and the exit status 3', async function () {
      await screenWhen('the prompt', (s) => s.includes('$'));
      const command = 'node dist/cli/tasker.js send flaky --identifier tmux-1 --payload \'{"sleep": 2.5, "fail": ["ep2"]}\' --endpoints ep1,ep2,ep3 --wait; echo EXIT=$?';
      await tmux('send-keys', '-t', 'cli', '-l', command);
      await tmux('send-keys', '-t', 'cli', 'Enter');
      const header = 'flaky/tmux-1  ';
      const count = (s: string, text: string): number => s.split(text).length - 1;

      const start = await screenWhen('the task SENT with nothing finished', (s) => s.includes(`${header}SENT`) && s.includes('0/3 finished'));
      assert.match(start, /^flaky\/tmux-1 {2}SENT {2}\[\.{30}\] 0\/3 finished$/m);
      for (const ep of ['ep1', 'ep2', 'ep3']) assert.match(start, new RegExp(`^${ep} +(pending|running) `, 'm'));
      assert.match(start, /^ENDPOINT +STATE +ROUND +ATTEMPTS +ERRNR +RESULT$/m);

      const during = await screenWhen('ep1 running while ep3 is still pending', (s) => /^ep1 +running /m.test(s) && /^ep3 +pending /m.test(s));
      assert.match(during, /^flaky\/tmux-1 {2}SENT {2}\[\.{30}\] 0\/3 finished$/m);
      assert.match(during, /running [12] {2}succeeded 0 {2}failed 0 {2}missing 0/);
      assert.equal(count(during, header), 1, `one frame, redrawn in place:\n${during}`);

      const end = await screenWhen('the exit status and the prompt', (s) => /^EXIT=\d+$/m.test(s) && s.trimEnd().endsWith('$'));
      assert.match(end, /^flaky\/tmux-1 {2}INCOMPLETE {2}\[#{20}\.{10}\] 2\/3 finished$/m);
      assert.match(end, /^pending 0 {2}running 0 {2}succeeded 1 {2}failed 1 {2}missing 1 {2}cancelled 0$/m);
      assert.match(end, /^ep1 +succeeded +0 +1 +0 +\{"round":0,"cancelled":false\}$/m);
      assert.match(end, /^ep2 +failed +0 +1 +7 +failed as asked$/m);
      assert.match(end, /^ep3 +missing +0 +0 +- +never answered$/m);
      assert.match(end, /^tasker: flaky\/tmux-1 is INCOMPLETE: 1 failed, 1 missing of 3 endpoints$/m);
      assert.match(end, /^EXIT=3$/m);
      assert.equal(count(end, header), 1, `the result took the place of the live frame:\n${end}`);
      assert.doesNotMatch(end, /^ep\d +(pending|running) /m);
    });
  });
});
