import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import os from 'node:os';
import { createLogger } from '../lib/logger';

/**
 * `npm run bench:logging`: what a log line costs at level info, written the way an endpoint manager
 * writes them (a child per task carrying its id, identifier and type, then "running handler" and
 * "task finished"), and what a `debug` call costs when the level is info. The measuring process writes
 * to /dev/null, so the figure is the logger's work and the write system call, not a reader's.
 */
const TASKS = 100_000;
const LINES = TASKS * 2;
const DEBUG_CALLS = 20_000_000;
const RUNS = 5;

/** CPU time of this process (ns), not wall time: the figure holds on a machine shared with other work. */
function cpuNs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
}

function measure(): { infoNs: number; debugNs: number } {
  const base = createLogger({ process: 'manager' }, 'info');
  const endpointLog = base.child({ endpoint: 'console1' });
  const tasks = (n: number, from: number): void => {
    for (let i = from; i < from + n; i++) {
      const log = endpointLog.child({ taskId: i, identifier: `task-${i}`, type: 'worker' });
      log.info({ attempt: 0 }, 'running handler');
      log.info({ errnr: 0 }, 'task finished');
    }
  };
  // Warm-up: the measured lines meet JIT-compiled code.
  tasks(20_000, 0);
  let start = cpuNs();
  tasks(TASKS, 20_000);
  const infoNs = (cpuNs() - start) / LINES;

  for (let i = 0; i < 100_000; i++) endpointLog.debug({ taskId: i }, 'task not for this endpoint; skipped');
  start = cpuNs();
  for (let i = 0; i < DEBUG_CALLS; i++) endpointLog.debug({ taskId: i }, 'task not for this endpoint; skipped');
  const debugNs = (cpuNs() - start) / DEBUG_CALLS;
  return { infoNs, debugNs };
}

async function runChild(): Promise<{ infoNs: number; debugNs: number }> {
  const child = spawn(process.execPath, [__filename, '--child'], { stdio: ['ignore', openSync('/dev/null', 'w'), 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m as { infoNs: number; debugNs: number }));
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`measuring process exited with ${code}`)); });
  });
}

async function report(): Promise<void> {
  const runs: { infoNs: number; debugNs: number }[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await runChild());
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const info = median(runs.map((r) => r.infoNs));
  const debug = median(runs.map((r) => r.debugNs));
  // The best run too: even CPU time grows with the neighbours' load (caches, frequency), the best run least.
  const bestInfo = Math.min(...runs.map((r) => r.infoNs));
  process.stdout.write(`logging at level info, ${LINES} lines to /dev/null, ${RUNS} processes, ${os.cpus().length} cores, Node ${process.versions.node}, CPU time\n`
    + `  info line (a child per task included): median ${Math.round(1e9 / info)} lines/s, ${Math.round(info)} ns/line;`
    + ` best ${Math.round(1e9 / bestInfo)} lines/s, ${Math.round(bestInfo)} ns/line\n`
    + `  debug call while the level is info (disabled): median ${debug.toFixed(1)} ns/call\n`);
}

if (process.argv.includes('--child')) {
  process.send!(measure(), () => process.exit(0));
} else {
  report().catch((err: unknown) => {
    process.stderr.write(`bench:logging failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
