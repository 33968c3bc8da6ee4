import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Stopping and starting this machine's RabbitMQ and MariaDB for the fault tests. Every test that stops
 * one starts it again in a `finally`, and the fault suite's root hook calls `ensureServices()`.
 */
const run = promisify(execFile);

/** Whether the command exits 0 (within a minute). */
export async function succeeds(cmd: string, args: string[]): Promise<boolean> {
  try {
    await run(cmd, args, { timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, test: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const MARIADBD = ['--exec', '/usr/sbin/mariadbd'];
const mariadbRunning = (): Promise<boolean> => succeeds('start-stop-daemon', ['--status', ...MARIADBD]);
const mariadbAnswers = (): Promise<boolean> => succeeds('mysqladmin', ['-uroot', '-h127.0.0.1', '--connect-timeout=2', 'ping']);

export async function stopMariadb(): Promise<void> {
  await run('mysqladmin', ['-uroot', '-h127.0.0.1', 'shutdown']);
  await until('MariaDB to stop', async () => !(await mariadbRunning()));
}

export async function startMariadb(): Promise<void> {
  if (!(await mariadbAnswers())) {
    await run('start-stop-daemon', ['--start', '--oknodo', '--background', ...MARIADBD]);
    await until('MariaDB to answer', mariadbAnswers);
  }
}

const managementAnswers = (): Promise<boolean> =>
  fetch('http://127.0.0.1:15672/api/overview', { headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` } })
    .then((r) => r.ok, () => false);

export async function stopRabbitApp(): Promise<void> {
  await run('rabbitmqctl', ['-q', 'stop_app'], { timeout: 120_000 });
}

export async function startRabbitApp(): Promise<void> {
  await run('rabbitmqctl', ['-q', 'start_app'], { timeout: 120_000 });
  await run('rabbitmqctl', ['-q', 'await_startup'], { timeout: 120_000 });
  await until('the RabbitMQ management API', managementAnswers);
}

export async function closeAllRabbitConnections(vhost?: string): Promise<void> {
  // Without --vhost, rabbitmqctl closes the connections of the default vhost only.
  await run('rabbitmqctl', ['-q', 'close_all_connections', ...vhost === undefined ? [] : ['--vhost', vhost], 'closed by the fault tests']);
}

/** Brings both services back if a test left one down. */
export async function ensureServices(): Promise<void> {
  await startMariadb();
  if (!(await managementAnswers())) await startRabbitApp();
}
