import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../config/loader';
import { freePort } from '../support/harness';
import { REQUIRE_SERVICES } from '../support/service-gate';

/** Runs mocha on some of the project's suites with the services' addresses pointed at a closed port. */
async function runWithoutServices(requireServices: boolean): Promise<{ code: number | null; output: string; ms: number }> {
  const closed = String(await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env, TASKER_TEST_DB_PORT: closed, TASKER_TEST_MQ_PORT: closed, TASKER_TEST_MQ_API_PORT: closed,
  };
  delete env[REQUIRE_SERVICES];
  if (requireServices) env[REQUIRE_SERVICES] = '1';
  const root = projectRoot();
  const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
  const files = ['broadcast', 'fleet', 'http-contract'].map((f) => path.join(root, 'dist', 'test', 'integration', `${f}.test.js`));
  const started = Date.now();
  const child = spawn(process.execPath, [mocha, '--timeout', '120000', ...files], { cwd: root, env });
  let output = '';
  child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, output, ms: Date.now() - started };
}

/** `npm test` on a machine with only Node.js: what needs RabbitMQ and MariaDB is reported, not failed. */
describe('suites that need RabbitMQ and MariaDB, where they cannot be reached', function () {
  it('are reported by name with the reason, while the rest runs and passes', async function () {
    const { code, output } = await runWithoutServices(false);
    assert.equal(code, 0, output);
    assert.match(output, /not run: MariaDB at 127\.0\.0\.1:\d+: connection refused; RabbitMQ at 127\.0\.0\.1:\d+: connection refused/);
    assert.match(output, /3 suites not run \(.*\): broadcasting tasks to endpoints .*, a fleet of 100 endpoint manager processes, HTTP contract \(rabbitmq\)\./);
    assert.match(output, /TASKER_REQUIRE_SERVICES=1 makes a missing service a failure/);
    // The standalone backend's contract tests ran and passed.
    assert.match(output, /HTTP contract \(standalone\)[\s\S]*✔ 413 for a body over api\.body_limit/);
    assert.match(output, /\d+ passing/);
    assert.doesNotMatch(output, /failing/);
  });

  it('fail the run when TASKER_REQUIRE_SERVICES is set', async function () {
    const { code, output } = await runWithoutServices(true);
    assert.notEqual(code, 0);
    assert.match(output, /3 failing/);
    assert.match(output, /needs MariaDB at 127\.0\.0\.1:\d+: connection refused.*\(TASKER_REQUIRE_SERVICES is set\)/);
  });
});
