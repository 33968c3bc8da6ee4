import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageVersion, projectRoot } from '../../config/loader';
import { Harness, Proc } from '../support/harness';
import { until } from '../support/until';

const PACK = path.join(projectRoot(), 'dist', 'scripts', 'pack-endpoint.js');
/** What a host with Node.js only lacks: nothing that builds a native module. */
const BUILD_TOOLS = ['cc', 'gcc', 'g++', 'c++', 'make', 'python3'];

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/**
 * The endpoint package as an operator gets it (docs/endpoint-host.md): `npm run pack:endpoint`, the
 * tarball installed with `npm install --omit=dev` into an empty folder on a PATH that has node and npm and
 * no compiler, then `tasker-endpoint --config FILE` with a handler kept in a folder of its own, against
 * this run's vhost with an endpoint user of its own, a task POSTed to the real API.
 */
describe('the endpoint package installs alone and runs a handler from outside it', function () {
  const h = new Harness();
  const work = mkdtempSync(path.join(os.tmpdir(), 'tasker-endpoint-pkg-'));
  const bin = path.join(work, 'bin');
  const host = path.join(work, 'host');
  const handlers = path.join(work, 'handlers');
  const etc = path.join(work, 'etc');
  const endpoint = `pkg-${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  let tarball = '';
  let installOutput = '';
  let agent: Proc | null = null;

  const agentBin = (): string => path.join(host, 'node_modules', '.bin', 'tasker-endpoint');
  /** The environment of the endpoint host: the bare PATH, nothing of this run's. */
  const hostEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: bin, HOME: work, npm_config_cache: path.join(work, 'npm-cache'), npm_config_update_notifier: 'false', ...extra,
  });
  const writeConfig = (name: string, manager: Record<string, unknown>): string => {
    const mq = h.config.manager.message_queue;
    const file = path.join(etc, name);
    writeFileSync(file, `${JSON.stringify({
      task_types: ['worker', 'backup'],
      manager: {
        heartbeat_interval: 1,
        shutdown_timeout: 5,
        message_queue: {
          host: mq.host, port: mq.port, virtual_host: mq.virtual_host, exchange: mq.exchange,
          // ${VAR}: the secret from the service's environment, not the file.
          username: endpoint, password: '${ENDPOINT_MQ_PASSWORD}',
        },
        ...manager,
      },
    }, null, 2)}\n`);
    return file;
  };
  /** Runs the installed command to its end. */
  const runAgent = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> => {
    const p = new Proc('tasker-endpoint', spawn(agentBin(), args, { cwd: work, env: hostEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }));
    const code = await p.exited;
    return { code, output: p.raw.join('\n') };
  };

  before(async function () {
    this.timeout(300_000);
    await h.setup(this);
    await h.startApi();
    await h.addEndpointUser(endpoint, password);
    for (const d of [bin, host, handlers, etc]) mkdirSync(d, { recursive: true });
    // A PATH with node, npm and a shell only (npm's own script finds node through it).
    const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    symlinkSync(process.execPath, path.join(bin, 'node'));
    symlinkSync(npm, path.join(bin, 'npm'));
    symlinkSync('/bin/sh', path.join(bin, 'sh'));
    tarball = execFileSync(process.execPath, [PACK, '--out', path.join(work, 'pack')], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop() ?? '';
    installOutput = execFileSync('npm', ['install', '--omit=dev', '--offline', '--no-audit', '--no-fund', tarball], {
      cwd: host, env: hostEnv(), encoding: 'utf8', timeout: 120_000,
    });
    // The handler lives beside the package, in a folder an upgrade of it never touches; plain compiled JS.
    writeFileSync(path.join(handlers, 'greeting.js'), 'exports.greet = (name) => `hello ${name}`;\n');
    writeFileSync(path.join(handlers, 'worker.js'), [
      'const { greet } = require(\'./greeting\');',
      'exports.handleTask = async (task, response) => {',
      '  response.log(\'handling\', task.identifier);',
      '  response.payload = { said: greet(task.payload.name), endpoint: response.endpoint, handler: __filename };',
      '};',
      '',
    ].join('\n'));
  });

  after(async function () {
    await agent?.stop();
    try {
      await h.teardown();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('installs from its tarball where no compiler is on PATH: one package, no dependency, no native module', function () {
    assert.match(path.basename(tarball), new RegExp(`^tasker-endpoint-${packageVersion().replace(/\./g, '\\.')}\\.tgz$`));
    for (const tool of BUILD_TOOLS) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`], { env: hostEnv(), encoding: 'utf8' });
      assert.notEqual(found.status, 0, `${tool} is on the host's PATH (${found.stdout.trim()})`);
    }
    assert.match(installOutput, /added 1 package/);
    const modules = readdirSync(path.join(host, 'node_modules')).filter((n) => !n.startsWith('.'));
    assert.deepEqual(modules, ['tasker-endpoint']);
    const files = filesUnder(path.join(host, 'node_modules', 'tasker-endpoint'));
    assert.deepEqual(files.filter((f) => f.endsWith('.node')), [], 'a native module was installed');
    assert.ok(files.includes(path.join('dist', 'tasker-endpoint.js')), files.join(', '));
  });

  it('--version prints the project\'s version', async function () {
    const { code, output } = await runAgent(['--version']);
    assert.equal(code, 0, output);
    assert.equal(output.trim(), packageVersion());
  });

  it('runs a task POSTed to the API with the handler of its own folder: DONE, with the handler\'s response, and its version in its facts', async function () {
    const config = writeConfig('config.yaml', { endpoints: [{ name: endpoint, task_types: ['worker'] }], handlers_dir: handlers });
    // No --endpoint: it runs the endpoints of manager.endpoints.
    agent = new Proc('tasker-endpoint', spawn(agentBin(), ['--config', config], {
      cwd: work, env: hostEnv({ ENDPOINT_MQ_PASSWORD: password }), stdio: ['ignore', 'pipe', 'pipe'],
    }));
    await agent.waitForLog((l) => l.msg === 'endpoint manager started', 60_000, 'start');
    const identifier = `pkg-${randomBytes(4).toString('hex')}`;
    const posted = await h.post('worker', { identifier, payload: { name: 'fleet' }, endpoints: [endpoint] });
    assert.equal(posted.status, 201, JSON.stringify(posted.json));
    const done = await h.waitForStatus('worker', identifier, ['DONE'], 60_000);
    assert.equal(done.taskResponseList.length, 1);
    const [response] = done.taskResponseList;
    assert.equal(response.endpoint, endpoint);
    assert.equal(response.errnr, 0, response.errmsg);
    assert.deepEqual(response.payload, { said: 'hello fleet', endpoint, handler: path.join(handlers, 'worker.js') });
    const facts = await until('the endpoint registered with its facts', async () => {
      const listed = (await h.get('endpoints')).json.endpoints as { name: string; facts: Record<string, unknown> | null }[];
      return listed.find((e) => e.name === endpoint && e.facts !== null)?.facts;
    });
    assert.equal(facts.version, packageVersion());
    assert.deepEqual(facts.task_types, ['worker']);
    assert.equal(await agent.stop(), 0, agent.raw.slice(-10).join('\n'));
    agent = null;
  });

  it('does not start with a handlers_dir that does not exist, or without the module of a configured task type: the key and the type named', async function () {
    // Relative: from the configuration file's folder.
    const missingDir = writeConfig('missing-dir.yaml', { endpoints: [endpoint], handlers_dir: 'no-such-handlers' });
    const noDir = await runAgent(['--config', missingDir], { ENDPOINT_MQ_PASSWORD: password });
    assert.equal(noDir.code, 1, noDir.output);
    assert.match(noDir.output, new RegExp(`tasker-endpoint: config key 'manager\\.handlers_dir': ${path.join(etc, 'no-such-handlers')} does not exist`));
    // backup has no module in the handlers folder.
    const noModule = writeConfig('no-module.yaml', { endpoints: [endpoint], handlers_dir: handlers });
    const missing = await runAgent(['--config', noModule], { ENDPOINT_MQ_PASSWORD: password });
    assert.equal(missing.code, 1, missing.output);
    assert.match(missing.output, /tasker-endpoint: config key 'manager\.handlers_dir': task type 'backup': no handler module backup in /);
    // The environment alone, no file: the same keys, the same checks.
    const envOnly = await runAgent(['--endpoint', endpoint], {
      TASKER_TASK_TYPES: '[worker]', TASKER_MANAGER__HANDLERS_DIR: '/nonexistent/handlers',
      TASKER_MANAGER__MESSAGE_QUEUE__USERNAME: endpoint, TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD: password,
    });
    assert.equal(envOnly.code, 1, envOnly.output);
    assert.match(envOnly.output, /config key 'manager\.handlers_dir': \/nonexistent\/handlers does not exist/);
    const badFile = await runAgent(['--config', path.join(etc, 'absent.yaml')]);
    assert.equal(badFile.code, 2, badFile.output);
    assert.match(badFile.output, /tasker-endpoint: .*absent\.yaml: does not exist/);
  });
});
