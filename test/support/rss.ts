import { readFileSync } from 'node:fs';

/** A process's resident set in MiB (VmRSS of /proc/<pid>/status); null once it is gone. */
export function rssMiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export interface RssSample {
  /** Seconds since sampling began. */
  t: number;
  mib: number;
}

/** Samples a process's RSS every `intervalMs` until stopped. */
export function sampleRss(pid: number, intervalMs = 1000): { samples: RssSample[]; stop(): void } {
  const samples: RssSample[] = [];
  const start = Date.now();
  const take = (): void => {
    const mib = rssMiB(pid);
    if (mib !== null) samples.push({ t: (Date.now() - start) / 1000, mib });
  };
  take();
  const timer = setInterval(take, intervalMs);
  return { samples, stop: () => clearInterval(timer) };
}

/** The largest sample taken in [from, to) seconds. */
export function maxIn(samples: readonly RssSample[], from: number, to: number): number {
  const inside = samples.filter((s) => s.t >= from && s.t < to).map((s) => s.mib);
  if (inside.length === 0) throw new Error(`no RSS sample between ${from} s and ${to} s`);
  return Math.max(...inside);
}
