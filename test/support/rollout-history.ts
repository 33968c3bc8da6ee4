import assert from 'node:assert/strict';

/** A task's history, as GET …/events answers it. */
export interface HistoryEvent {
  id: number;
  kind: string;
  time: string;
  detail: Record<string, any> | null;
}

/**
 * A rollout as its history tells it, read in event order (the order of the changes, since every writer of
 * a task's events holds its lock): the endpoints of each send as decided, and how many endpoints had been
 * sent the task and not finished (or gone missing) after each event.
 */
export function replayRollout(events: HistoryEvent[]): {
  sends: Map<string, number>;
  maxInFlight: number;
  order: string[];
} {
  const sends = new Map<string, number>();
  const inFlight = new Set<string>();
  const order: string[] = [];
  let maxInFlight = 0;
  for (const e of events) {
    const names: string[] = e.kind === 'sent' && !e.detail?.resend ? e.detail?.endpoints ?? [] : [];
    for (const n of names) {
      sends.set(n, (sends.get(n) ?? 0) + 1);
      inFlight.add(n);
      order.push(n);
    }
    if (e.kind === 'finished' || e.kind === 'missing') for (const x of e.detail?.endpoints ?? []) inFlight.delete(x.endpoint);
    maxInFlight = Math.max(maxInFlight, inFlight.size);
  }
  return { sends, maxInFlight, order };
}

/**
 * The endpoints' own runs, from the history's times: each endpoint's run starts at its receipt (or, for a
 * handler quicker than the receipt delay, when its result came) and ends with its result; the largest
 * number of runs that overlap. Events of one time are taken ends first, so that a slot handed on within a
 * millisecond does not count twice.
 */
export function maxOverlap(events: HistoryEvent[]): number {
  const start = new Map<string, number>();
  const end = new Map<string, number>();
  for (const e of events) {
    for (const x of e.detail?.endpoints ?? []) {
      if (typeof x !== 'object') continue;
      const t = Date.parse(e.time);
      if (e.kind === 'received' && !start.has(x.endpoint)) start.set(x.endpoint, t);
      if (e.kind === 'finished') {
        if (!start.has(x.endpoint)) start.set(x.endpoint, t);
        end.set(x.endpoint, t);
      }
    }
  }
  const points: [number, number][] = [];
  for (const [ep, s] of start) {
    points.push([s, 1]);
    points.push([end.get(ep) ?? Infinity, -1]);
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (now += d));
  return max;
}

/** Every endpoint sent the task exactly once by the rollout's decisions. */
export function assertSentOnce(sends: Map<string, number>, endpoints: string[]): void {
  assert.deepEqual([...sends.keys()].sort(), [...endpoints].sort(), 'the endpoints the rollout sent the task to');
  const twice = [...sends].filter(([, n]) => n !== 1);
  assert.deepEqual(twice, [], 'endpoints sent the task more than once');
}
