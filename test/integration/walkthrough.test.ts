import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../../config/loader';
import { readDoc, ROOT } from '../support/docs';
import { outputDifference } from '../support/docs-examples';
import { freePort } from '../support/harness';
import { requireServices } from '../support/service-gate';

const run = promisify(execFile);

/** A block of the README's production walkthrough: the line after `<!-- walkthrough: HOST -->`. */
interface WalkthroughBlock {
  host: string;
  line: number;
  body: string[];
}

function walkthroughBlocks(markdown: string): WalkthroughBlock[] {
  const lines = markdown.split('\n');
  const out: WalkthroughBlock[] = [];
  lines.forEach((l, i) => {
    const m = /^<!--\s*walkthrough:\s*(.+?)\s*-->$/.exec(l);
    if (!m) return;
    assert.ok(lines[i + 1]?.startsWith('```'), `README.md:${i + 1}: a walkthrough marker must be followed by a fenced block`);
    let end = i + 2;
    while (end < lines.length && !lines[end].startsWith('```')) end++;
    out.push({ host: m[1], line: i + 1, body: lines.slice(i + 2, end) });
  });
  return out;
}

/** `$ ` lines with the output they show (a line `...` stands for any lines), or plain lines run in turn. */
function commandsOf(block: WalkthroughBlock): { command: string; expected: string | null }[] {
  if (!block.body.some((l) => l.startsWith('$ '))) return [{ command: block.body.join('\n'), expected: null }];
  const out: { command: string; expected: string }[] = [];
  for (const l of block.body) {
    if (l.startsWith('$ ')) out.push({ command: l.slice(2), expected: '' });
    else out[out.length - 1].expected += `${out[out.length - 1].expected === '' ? '' : '\n'}${l}`;
  }
  return out;
}

/** The shown output after its last `...` line: what the command ends with. */
function shownEnd(expected: string): string {
  const lines = expected.split('\n');
  const cut = lines.lastIndexOf('...');
  return lines.slice(cut + 1).join('\n');
}

/**
 * The README's production walkthrough, run as written: a server host and two endpoint hosts on this machine
 * (each its own pm2 under its own PM2_HOME, the endpoint hosts with nothing in their environment but what
 * `endpoint add` wrote), a task to both, a failure and its retry, then the teardown. Only names are made
 * this run's own: the database, its user, the vhost, the broker users, the API port, the files.
 */
describe('the README\'s production walkthrough, as written', function () {
  this.timeout(600_000);
  const id = `tasker_w${process.pid}_${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tasker-walkthrough-'));
  const test = loadConfig({ mode: 'test' });
  const db = new URL(test.manager.db.uri);
  const mq = test.manager.message_queue;
  const blocks = walkthroughBlocks(readDoc('README.md'));
  let port = 0;
  const hostEnv = new Map<string, NodeJS.ProcessEnv>();
  const pm2Homes: string[] = [];

  /** The walkthrough's names made this run's own. */
  const own = (text: string): string => text
    .replaceAll('mysql://tasker:change-me-db@127.0.0.1:3306/tasker', `mysql://${id}:pw-${id}@${db.hostname}:${db.port || 3306}/${id}`)
    .replaceAll('mysql://root@127.0.0.1:3306/', `mysql://root@${db.hostname}:${db.port || 3306}/`)
    .replaceAll('TASKER_MANAGER__MESSAGE_QUEUE__HOSTS=127.0.0.1:5672', `TASKER_MANAGER__MESSAGE_QUEUE__HOSTS=${mq.host}:${mq.port}`)
    .replaceAll('TASKER_MANAGER__MESSAGE_QUEUE__USERNAME=tasker', `TASKER_MANAGER__MESSAGE_QUEUE__USERNAME=${id}`)
    .replaceAll('$PWD/var/signing.key', path.join(tmp, 'signing.key'))
    .replaceAll('~/.pm2-', path.join(tmp, 'pm2-'))
    .replace(/(?:\.\/)?web-(\d)\.env/g, (_m, n: string) => path.join(tmp, `endpoint-${n}.env`))
    .replace(/web-(\d)/g, (_m, n: string) => `${id}-web-${n}`);

  /** What every host's shell starts with: the machine's PATH and HOME, this run's port and broker. */
  const baseEnv = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH, HOME: process.env.HOME, TASKER_API__PORT: String(port), TASKER_URL: `http://127.0.0.1:${port}`,
    TASKER_MANAGER__MESSAGE_QUEUE__VIRTUAL_HOST: id, TASKER_RABBITMQ__APIURL: test.rabbitmq.apiurl,
    TASKER_LOG_LEVEL: 'warn', NO_COLOR: '1', TASKER_OUTPUT: 'table',
  });

  /** Runs a script in a host's shell; what it exports stays for that host's next script. */
  async function sh(host: string, script: string, shown = false): Promise<string> {
    const envFile = path.join(tmp, `${host.replace(/\W/g, '_')}.env.json`);
    const env = hostEnv.get(host) ?? { ...baseEnv(), PM2_HOME: path.join(tmp, `pm2-${host.replace(/\W/g, '_')}`) };
    // A plain block stops at its first failing line; a `$ ` command may end non-zero (a task with failed
    // endpoints, followed with --wait), which its shown output tells.
    const wrapped = `${shown ? '' : 'set -e\n'}${script}\nnode -p 'JSON.stringify(process.env)' > ${envFile}`;
    try {
      const { stdout } = await run('bash', ['-c', wrapped], { cwd: ROOT, env, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
      const next = JSON.parse(readFileSync(envFile, 'utf8')) as NodeJS.ProcessEnv;
      hostEnv.set(host, next);
      if (next.PM2_HOME && !pm2Homes.includes(next.PM2_HOME)) pm2Homes.push(next.PM2_HOME);
      return stdout;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${host}: ${script}\nfailed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`.slice(0, 6000));
    }
  }

  async function runBlock(host: string, block: WalkthroughBlock): Promise<void> {
    for (const { command, expected } of commandsOf(block)) {
      const out = await sh(host, own(command), expected !== null);
      if (expected === null) continue;
      const want = own(shownEnd(expected));
      const got = out.trimEnd().split('\n').slice(-want.split('\n').length).join('\n');
      const d = outputDifference(want, got);
      assert.equal(d, null, `README.md:${block.line}: ${command}\n${d}`);
    }
  }

  before(async function () {
    await requireServices(this);
    port = await freePort();
  });

  after(async function () {
    for (const home of pm2Homes) {
      await run(process.execPath, [path.join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2'), 'kill'], { env: { ...process.env, PM2_HOME: home }, timeout: 60_000 }).catch(() => undefined);
    }
    // A run that failed half-way still leaves nothing behind.
    const server = hostEnv.get('server');
    if (server) {
      await run(process.execPath, ['dist/scripts/initialize.js', '--teardown', '--yes'], {
        cwd: ROOT, env: { ...server, TASKER_MANAGER__DB__ADMIN_URI: `mysql://root@${db.hostname}:${db.port || 3306}/` }, timeout: 120_000,
      }).catch(() => undefined);
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it('has the blocks of a server host, two endpoint hosts and a teardown', function () {
    assert.deepEqual([...new Set(blocks.map((b) => b.host))], ['server', 'endpoint web-1', 'teardown']);
  });

  it('sets up the server host: database, vhost, key, token, API under pm2, two endpoint users', async function () {
    await runBlock('server', blocks.filter((b) => b.host === 'server')[0]);
    for (const n of ['1', '2']) {
      const file = path.join(tmp, `endpoint-${n}.env`);
      assert.ok(existsSync(file), `endpoint add wrote ${file}`);
      assert.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only');
    }
    const apps = JSON.parse(await sh('server', 'npx pm2 jlist')) as { name: string }[];
    assert.deepEqual(apps.map((a) => a.name), ['tasker-api'], 'the server host runs the API only');
  });

  it('starts each endpoint host from its env file alone, its manager only', async function () {
    const block = blocks.find((b) => b.host === 'endpoint web-1') as WalkthroughBlock;
    for (const n of ['1', '2']) {
      const host = `endpoint web-${n}`;
      // Nothing of the server host's environment: the machine's PATH and HOME only.
      hostEnv.set(host, { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', TASKER_OUTPUT: 'table' });
      await runBlock(host, { ...block, body: block.body.map((l) => l.replaceAll('web-1', `web-${n}`)) });
      const apps = JSON.parse(await sh(host, 'npx pm2 jlist')) as { name: string }[];
      assert.deepEqual(apps.map((a) => a.name), [`tasker-manager-${id}-web-${n}`]);
      assert.equal(hostEnv.get(host)?.TASKER_MANAGER__DB__URI, undefined);
    }
  });

  it('sends a task to both endpoints, and retries a failed one, with the output the README shows', async function () {
    const server = blocks.filter((b) => b.host === 'server');
    assert.ok(server.length >= 3, 'the server blocks: setup, a task, a retry');
    // The endpoints register within a heartbeat or two of starting.
    for (const deadline = Date.now() + 60_000; ;) {
      const out = await sh('server', 'npx tasker endpoints -o json');
      const alive = (JSON.parse(out) as { endpoints: { name: string; alive: boolean }[] }).endpoints.filter((e) => e.alive).length;
      if (alive === 2) break;
      assert.ok(Date.now() < deadline, `endpoints: ${out}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const block of server.slice(1)) await runBlock('server', block);
  });

  it('removes everything: the processes of every host, the database, the vhost and the users', async function () {
    const block = blocks.find((b) => b.host === 'teardown') as WalkthroughBlock;
    for (const host of ['endpoint web-1', 'endpoint web-2']) await sh(host, 'npx pm2 delete ecosystem.config.js');
    await runBlock('server', block);
    const dbs = await run('mysql', ['-uroot', `-h${db.hostname}`, `-P${db.port || 3306}`, '-N', '-e', `SHOW DATABASES LIKE '${id}'`]);
    assert.equal(dbs.stdout.trim(), '', 'the database is gone');
    const auth = `Basic ${Buffer.from(`${test.rabbitmq.username}:${test.rabbitmq.password}`).toString('base64')}`;
    const vhost = await fetch(`${test.rabbitmq.apiurl}/vhosts/${id}`, { headers: { authorization: auth } });
    assert.equal(vhost.status, 404, 'the vhost is gone');
    for (const user of [id, `${id}-web-1`, `${id}-web-2`]) {
      const r = await fetch(`${test.rabbitmq.apiurl}/users/${encodeURIComponent(user)}`, { headers: { authorization: auth } });
      assert.equal(r.status, 404, `the broker user ${user} is gone`);
    }
    hostEnv.delete('server');
  });
});
