import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Harness } from './harness';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Alive, and not a zombie waiting for a parent (a container's init may never reap it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The process a `worker` task's handler runs in, as it says in its first line of output when asked to
 * misbehave (handlers/misbehave.ts): what a test watches while the handler spins, hangs or is killed.
 */
export async function misbehavingPid(h: Harness, identifier: string, endpoint: string): Promise<number> {
  for (const until = Date.now() + 30_000; ; await sleep(50)) {
    assert.ok(Date.now() < until, `${identifier}: no line naming its process`);
    const res = await h.get(`worker/${identifier}/responses/${endpoint}/output`);
    const line = (res.json?.lines as { text: string }[] | undefined)?.find((l) => /^process \d+ will misbehave/.test(l.text));
    if (line) return Number(/^process (\d+)/.exec(line.text)?.[1]);
  }
}
