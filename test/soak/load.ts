import http, { Agent } from 'node:http';

export interface Accepted {
  type: string;
  identifier: string;
}

export interface LoadTotals {
  sent: number;
  accepted: Accepted[];
  /** Answers other than 2xx, by status. */
  refused: Record<number, number>;
  /** No answer (connection refused or reset, timeout): the task may or may not be stored. */
  failed: number;
  /** Ticks skipped because this many requests were still waiting: the system was not keeping up. */
  skipped: number;
}

const MAX_IN_FLIGHT = 500;
const REQUEST_TIMEOUT_MS = 30_000;

function post(agent: Agent, port: number, type: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/${type}`, agent, timeout: REQUEST_TIMEOUT_MS,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A steady, open-loop load: `rate` POSTs a second whatever the answers, every `broadcastEvery`-th one a
 * broadcast (no endpoints listed), the others to all of `endpoints`. Runs until `stop()`.
 */
export function steadyLoad(o: { port: number; rate: number; endpoints: string[]; broadcastEvery: number; sleepS: number; prefix: string }): { totals: LoadTotals; stop(): Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  const totals: LoadTotals = { sent: 0, accepted: [], refused: {}, failed: 0, skipped: 0 };
  const pending = new Set<Promise<void>>();
  const start = Date.now();
  const fire = (): void => {
    const identifier = `${o.prefix}-${totals.sent++}`;
    const broadcast = totals.sent % o.broadcastEvery === 0;
    const body = JSON.stringify({ identifier, payload: { sleep: o.sleepS, n: totals.sent }, ...(broadcast ? {} : { endpoints: o.endpoints }) });
    const p = post(agent, o.port, 'worker', body).then((status) => {
      if (status >= 200 && status < 300) totals.accepted.push({ type: 'worker', identifier });
      else totals.refused[status] = (totals.refused[status] ?? 0) + 1;
    }, () => { totals.failed++; });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  // Catches up on the schedule every 10 ms, so that the rate holds whatever the timer's jitter.
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - start) / 1000) * o.rate);
    while (totals.sent + totals.skipped < due) {
      if (pending.size >= MAX_IN_FLIGHT) totals.skipped++;
      else fire();
    }
  }, 10);
  return {
    totals,
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      agent.destroy();
    },
  };
}
