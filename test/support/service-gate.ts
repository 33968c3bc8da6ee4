import net from 'node:net';
import { loadConfig } from '../../config/loader';

/**
 * The integration and fault suites need RabbitMQ (with its management API) and MariaDB. Where they cannot
 * be reached, such a suite is not run: it is reported by name with the reason, and the run ends with a
 * summary line. With TASKER_REQUIRE_SERVICES set (as `.ci/run` does), a missing service fails the suite
 * instead, so that a run can never pass by not running them.
 */
export const REQUIRE_SERVICES = 'TASKER_REQUIRE_SERVICES';
const PROBE_TIMEOUT_MS = 1000;

function reachable(what: string, host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (problem: string | null): void => {
      socket.destroy();
      resolve(problem === null ? null : `${what} at ${host}:${port}: ${problem}`);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`));
    socket.once('connect', () => done(null));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'connection refused' : err.message));
  });
}

let probe: Promise<string[]> | null = null;

/** What cannot be reached, from the test mode's configuration; probed once per run, all at once. */
export function unreachableServices(): Promise<string[]> {
  probe ??= (async () => {
    const config = loadConfig({ mode: 'test' });
    const db = new URL(config.manager.db.uri);
    const mq = config.manager.message_queue;
    const api = new URL(config.rabbitmq.apiurl);
    const problems = await Promise.all([
      reachable('MariaDB', db.hostname, Number(db.port || 3306)),
      reachable('RabbitMQ', mq.host, mq.port),
      reachable('the RabbitMQ management API', api.hostname, Number(api.port || 80)),
    ]);
    return problems.filter((p): p is string => p !== null);
  })();
  return probe;
}

const notRun: string[] = [];
let reasons: string[] = [];

export interface RequireOptions {
  /** Only the problems this accepts count (a suite that brings its own broker needs only MariaDB). */
  only?: (problem: string) => boolean;
  /** Further problems the suite found itself (a program it needs is not installed). */
  also?: string[];
}

/** In a suite's `before`: skips the suite (or, with TASKER_REQUIRE_SERVICES, fails it) when a service is missing. */
export async function requireServices(ctx: Mocha.Context, options: RequireOptions = {}): Promise<void> {
  const problems = [...(await unreachableServices()).filter(options.only ?? (() => true)), ...options.also ?? []];
  if (problems.length === 0) return;
  const suite = ctx.test?.parent?.fullTitle() ?? 'a suite';
  if (process.env[REQUIRE_SERVICES]) throw new Error(`${suite} needs ${problems.join('; ')} (${REQUIRE_SERVICES} is set)`);
  notRun.push(suite);
  reasons = problems;
  process.stdout.write(`    not run: ${problems.join('; ')}\n`);
  ctx.skip();
}

process.on('exit', () => {
  if (notRun.length === 0) return;
  // Written at exit, so that it comes after mocha's own summary.
  process.stdout.write(`\n${notRun.length} suite${notRun.length === 1 ? '' : 's'} not run (${reasons.join('; ')}): `
    + `${notRun.join(', ')}.\nStart RabbitMQ and MariaDB (docs/development.md "Tests") and run npm test again; `
    + `${REQUIRE_SERVICES}=1 makes a missing service a failure.\n`);
});
