import { readFileSync } from 'node:fs';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(values: number[]): { p50: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

const CLK_TCK = 100;

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Peak resident set size in MB (VmHWM), from /proc. */
export function peakRssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

/** Resident set size now in MB (VmRSS), from /proc; 0 for a process that is gone. */
export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** Memory the kernel could give without swapping, in MB (MemAvailable), from /proc/meminfo. */
export function availableMb(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  return Number(/MemAvailable:\s+(\d+)/.exec(info)?.[1] ?? 0) / 1024;
}

/** Watches a set of processes: CPU seconds used between start() and stop(), and peak RSS. */
export class ProcessMeter {
  private readonly start = new Map<number, number>();
  constructor(private readonly procs: { name: string; pid: number }[]) {
    for (const p of procs) this.start.set(p.pid, cpuSeconds(p.pid));
  }

  read(): { name: string; pid: number; cpu_s: number; peak_rss_mb: number }[] {
    return this.procs.map((p) => ({
      name: p.name, pid: p.pid,
      cpu_s: Math.round((cpuSeconds(p.pid) - (this.start.get(p.pid) ?? 0)) * 100) / 100,
      peak_rss_mb: Math.round(peakRssMb(p.pid)),
    }));
  }
}
