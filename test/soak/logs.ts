import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

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
        const l = JSON.parse(line) as { level?: number; msg?: string };
        if ((l.level ?? 0) >= 40) counts.set(`${proc}: ${l.level === 40 ? 'warn' : 'error'} '${l.msg}'`, (counts.get(`${proc}: ${l.level === 40 ? 'warn' : 'error'} '${l.msg}'`) ?? 0) + 1);
      } catch {
        // a line cut by a kill
      }
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([what, n]) => `${n} × ${what}`);
}
