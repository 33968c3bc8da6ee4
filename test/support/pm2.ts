import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../config/loader';

const run = promisify(execFile);

export interface Pm2Process {
  name: string;
  pid: number;
  status: string;
  restarts: number;
}

/**
 * A pm2 daemon of a test's own: its PM2_HOME is a fresh temporary directory, so it never meets
 * anyone else's daemon or processes. `kill()` stops the daemon and every process it started.
 */
export class IsolatedPm2 {
  readonly home = mkdtempSync(path.join(os.tmpdir(), 'tasker-pm2-'));

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run(process.execPath, [path.join(projectRoot(), 'node_modules', 'pm2', 'bin', 'pm2'), ...args], {
      env: { ...this.env, PM2_HOME: this.home }, cwd: projectRoot(), timeout: 120_000, maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  }

  /** The project's ecosystem.config.js, with the mode and overrides of `env`. */
  start(): Promise<string> {
    return this.cli('start', 'ecosystem.config.js');
  }

  async list(): Promise<Pm2Process[]> {
    const raw = JSON.parse(await this.cli('jlist')) as { name: string; pid: number; pm2_env: { status: string; restart_time: number } }[];
    return raw.map((p) => ({ name: p.name, pid: p.pid, status: p.pm2_env.status, restarts: p.pm2_env.restart_time }));
  }

  /** Stops the daemon with its processes and removes its home. */
  async kill(): Promise<void> {
    await this.cli('kill').catch(() => undefined);
    rmSync(this.home, { recursive: true, force: true });
  }
}
