import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../config/loader';
import { ensureDebianPackage } from '../test/support/debian';

const run = promisify(execFile);

export interface WrkResult {
  requests: number;
  duration_us: number;
  p50_us: number;
  p99_us: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
}

/**
 * `wrk` POSTing tasks to /worker for `seconds` over `connections` keep-alive connections, each request a
 * task with an identifier `<prefix>-<thread>-<n>` and a payload of about 200 bytes. wrk is a C load
 * generator: it takes a small share of the 2 cores that the system under test runs on.
 */
export async function postWithWrk(port: number, o: { prefix: string; seconds: number; connections: number; endpoints: string[]; threads?: number }): Promise<WrkResult> {
  const script = path.join(projectRoot(), 'bench', 'wrk-post.lua');
  const { stdout } = await run('wrk', [
    '-t', String(o.threads ?? 2), '-c', String(o.connections), '-d', `${o.seconds}s`, '--timeout', '30s', '-s', script,
    `http://127.0.0.1:${port}`, '--', o.prefix, JSON.stringify(o.endpoints), '150',
  ], { timeout: (o.seconds + 120) * 1000, maxBuffer: 16 * 1024 * 1024 });
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  return JSON.parse(line.slice('WRK_RESULT '.length)) as WrkResult;
}

/** wrk's version line; installs Debian's `wrk` when it is missing. */
export async function ensureWrk(): Promise<string> {
  await ensureDebianPackage('wrk', ['sh', ['-c', 'command -v wrk']]);
  // `wrk -v` prints its version and exits with the usage status.
  const out = await run('wrk', ['-v']).then((r) => r.stdout, (err: { stdout?: string }) => err.stdout ?? '');
  return out.split('\n')[0] || 'wrk';
}
