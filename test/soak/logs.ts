import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Warn and worse, whether pino wrote the level as its label or its number. */
function levelName(level: string | number | undefined): string | null {
  if (typeof level === 'number') return level >= 50 ? 'error' : level >= 40 ? 'warn' : null;
  return level === 'warn' || level === 'error' || level === 'fatal' ? level : null;
}

/**
 * The warnings and errors the processes logged (pm2 keeps each process's lines under `<home>/logs`),
 * counted by process and message: what the summary shows beside a failure.
 */
export function loggedProblems(pm2Home: string): string[] {
  const dir = path.join(pm2Home, 'logs');
  const counts = new Map<string, number>();
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  for (const file of files) {
    const proc = file.replace(/-(out|error)(-\d+)?\.log$/, '');
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const l = JSON.parse(line) as { level?: string | number; msg?: string };
        const level = levelName(l.level);
        if (level === null) continue;
        const key = `${proc}: ${level} '${l.msg}'`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      } catch {
        // a line cut by a kill
      }
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([what, n]) => `${n} × ${what}`);
}

/**
 * The pm2 processes none of whose lines reached pm2's log files, from the names it runs: a process whose
 * logger wrote past pm2 (in its cluster mode, lines go over IPC through the replaced stdout) logs nothing
 * there. The soak logs at `warn`, and each process has warned by the end: the API that it is open, the
 * managers that the first fault closed their connection.
 */
export function silentProcesses(pm2Home: string, names: string[]): string[] {
  const dir = path.join(pm2Home, 'logs');
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    return names;
  }
  return names.filter((name) => !files.some((file) => /^-(out|error)(-\d+)?\.log$/.test(file.slice(name.length)) && file.startsWith(name)
    && readFileSync(path.join(dir, file), 'utf8').split('\n').some((line) => line.startsWith('{'))));
}
