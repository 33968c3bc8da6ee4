import type { RssSample } from '../support/rss';

/** One life of a process (a manager restarted by pm2 starts a new one, fresh). */
export interface Life {
  name: string;
  pid: number;
  samples: RssSample[];
}

export interface Verdict {
  life: string;
  startMiB: number;
  endMiB: number;
  /** Larger median of the first two windows after the warm-up. */
  referenceMiB: number | null;
  /** Median of the last quarter. */
  lastMiB: number | null;
  growth: number | null;
  /** Largest sample of the whole life, judged against a ceiling in every run. */
  peakMiB: number;
  judged: boolean;
  ok: boolean;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/**
 * Whether a life's RSS stayed flat after its warm-up (its first quarter, at least `minWarmupS`: a fresh
 * process fills its caches, such as a manager's 10,000 remembered tasks, and V8 sizes its heap): the
 * median of its last quarter against the larger median of the first two windows after the warm-up. A leak
 * raises the level the process keeps, and so the median of a quarter; a fault's aftermath (the API holds
 * requests and events for a minute or two after a database restart, then gives the memory back) raises a
 * window or two, and so would decide a window-by-window comparison. Two windows at the start, because V8
 * gives memory back now and then, and a reference taken in such a dip would make the level the process
 * keeps look like growth. The median decides only if such a rise covers less than half of the last quarter,
 * so a life whose last quarter is shorter than `minLastS` is not judged, nor is one too short for a window
 * after its warm-up.
 */
export function judge(life: Life, windowS: number, maxGrowth: number, minWarmupS: number, minLastS = 0): Verdict {
  const s = life.samples;
  const base = {
    life: `${life.name} (pid ${life.pid})`, startMiB: s[0]?.mib ?? 0, endMiB: s[s.length - 1]?.mib ?? 0,
    peakMiB: s.reduce((m, x) => Math.max(m, x.mib), 0),
  };
  const from = s[0]?.t ?? 0;
  const to = s[s.length - 1]?.t ?? 0;
  const warm = from + Math.max((to - from) / 4, minWarmupS);
  const inWindow = (a: number, b: number): number[] => s.filter((x) => x.t >= a && x.t < b).map((x) => x.mib);
  const lastStart = to - (to - from) / 4;
  const medians = (a0: number, b0: number): number[] => {
    const out: number[] = [];
    for (let a = a0; a + windowS <= b0 + 1e-9; a += windowS) {
      const w = inWindow(a, a + windowS);
      if (w.length >= 3) out.push(median(w));
    }
    return out;
  };
  const reference = medians(warm, Math.min(lastStart, warm + 2 * windowS));
  const last = inWindow(lastStart, to + 1e-9);
  if ((to - lastStart) < minLastS || reference.length === 0 || last.length < 3 || medians(lastStart, to).length === 0) {
    return { ...base, referenceMiB: null, lastMiB: null, growth: null, judged: false, ok: true };
  }
  const referenceMiB = Math.max(...reference);
  const lastMiB = median(last);
  const growth = lastMiB / referenceMiB - 1;
  return { ...base, referenceMiB, lastMiB, growth, judged: true, ok: growth <= maxGrowth };
}
