import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness';

const run = promisify(execFile);

/**
 * A MariaDB server of a test's own: its own data directory and port, so that the test may stop, stall
 * (SIGSTOP) or restart it without touching the machine's shared server that other suites use. Root has
 * an empty password, as on the shared server, so the harness's `initialize` works against it unchanged
 * (point the test config at it with `TASKER_TEST_DB_PORT`).
 */
export class PrivateMariadb {
  port = 0;
  /** `tls`: the server also speaks TLS with this certificate (clients choose; a user may REQUIRE SSL). */
  constructor(private readonly options: { tls?: { ca: string; cert: string; key: string } } = {}) {}

  private dir = '';
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('the private MariaDB is not running');
    return pid;
  }

  /** Creates the data directory and starts the server on a free port; resolves once it answers. */
  async start(): Promise<void> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-mariadb-'));
    this.port = await freePort();
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${this.dir}/data`, '--user=root',
      '--auth-root-authentication-method=normal', '--skip-test-db'], { timeout: 60_000 });
    await this.launch();
  }

  private async launch(): Promise<void> {
    const child = spawn('/usr/sbin/mariadbd', ['--no-defaults', `--datadir=${this.dir}/data`, `--port=${this.port}`,
      `--socket=${this.dir}/mysqld.sock`, '--bind-address=127.0.0.1', '--user=root', `--log-error=${this.dir}/error.log`,
      '--innodb-buffer-pool-size=128M', '--skip-log-bin', '--max-connections=500',
      ...this.options.tls ? [`--ssl-ca=${this.options.tls.ca}`, `--ssl-cert=${this.options.tls.cert}`, `--ssl-key=${this.options.tls.key}`] : []], { stdio: 'ignore' });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 60_000;
    while (!(await this.answers())) {
      if (child.exitCode !== null) throw new Error(`the private MariaDB exited at start:\n${this.errorLog()}`);
      if (Date.now() > deadline) throw new Error(`the private MariaDB did not answer within 60 s:\n${this.errorLog()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  private errorLog(): string {
    try {
      return readFileSync(path.join(this.dir, 'error.log'), 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      return '(no error log)';
    }
  }

  /** Whether it answers a ping within 2 s. */
  async answers(): Promise<boolean> {
    try {
      await run('mysqladmin', ['-uroot', '-h127.0.0.1', `-P${this.port}`, '--connect-timeout=2', 'ping'], { timeout: 5_000 });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Freezes the server: connections stay open and nothing answers (a stalled, not a refused, database).
   * Resolves once every thread is stopped: kill() only queues the signal, and a statement sent at once could
   * still be answered by a thread not stopped yet.
   */
  async pause(): Promise<void> {
    process.kill(this.pid, 'SIGSTOP');
    const deadline = Date.now() + 5_000;
    while (!this.stopped()) {
      if (Date.now() > deadline) throw new Error(`the private MariaDB (pid ${this.pid}) did not stop within 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Whether every thread of the server is stopped (state T in /proc). */
  private stopped(): boolean {
    const dir = `/proc/${this.pid}/task`;
    return readdirSync(dir).every((tid) => {
      try {
        // The state follows the command name in parentheses, which may itself hold spaces.
        const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
        return /^[Tt]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
      } catch {
        return true;
      }
    });
  }

  resume(): void {
    process.kill(this.pid, 'SIGCONT');
  }

  /** A clean shutdown (SIGTERM), waiting for the process to end. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    // A stalled server would never act on the SIGTERM.
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    await this.exited;
    this.child = null;
  }

  /** Stops and starts again on the same port with the same data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Stops the server and deletes its data. */
  async destroy(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await this.exited;
    }
    this.child = null;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
