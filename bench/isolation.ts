import type { Harness, Proc } from '../test/support/harness';
import { postAll } from './load';
import { summary } from './stats';
import { postWithWrk } from './wrk';

/** What one isolation setting gave: completed tasks/s under wrk load, and end-to-end latency one task at a time. */
export interface IsolationRun {
  isolation: 'process' | 'none';
  tasks: number;
  completed_per_s: number;
  e2e_p50_ms: number;
}

export interface IsolationOptions {
  endpoints: string[];
  seconds: number;
  warmup: number;
  connections: number;
  latencyTasks: number;
  payload: unknown;
  /** Rounds of (process, none), alternating, so that neither always runs on the fuller database. */
  rounds: number;
  /** `manager.concurrency` of the isolated managers; absent: the shipped default. */
  concurrency?: number;
  waitAllDone: (prefix: string) => Promise<number>;
  toMs: (t: unknown) => number;
  log: (msg: string) => void;
}

const median = (values: number[]): number => summary(values).p50;
const round1 = (n: number): number => Math.round(n * 10) / 10;

/**
 * The isolation phase of `npm run bench` (docs/handlers.md "Isolation"): the same workload with the endpoint
 * managers restarted with `manager.isolation: process` (the default) and `none`, alternately, in one run;
 * the ratio of their completed tasks/s, and the p50 latency isolation adds to a task run one at a time.
 */
export async function runIsolation(h: Harness, managers: Proc[], o: IsolationOptions): Promise<Record<string, unknown>> {
  let running = managers;
  const runs: IsolationRun[] = [];
  for (let r = 0; r < o.rounds; r++) {
    for (const isolation of ['process', 'none'] as const) {
      await Promise.all(running.map((p) => p.stop()));
      running = await Promise.all(o.endpoints.map((name) => h.startManager(name, ['worker'], {
        TASKER_MANAGER__ISOLATION: isolation, ...(o.concurrency !== undefined ? { TASKER_MANAGER__CONCURRENCY: String(o.concurrency) } : {}),
      })));
      const prefix = `iso${r}${isolation}`;
      o.log(`isolation ${isolation} (round ${r + 1}): warm-up ${o.warmup} s, wrk ${o.seconds} s, ${o.latencyTasks} tasks one at a time`);
      if (o.warmup > 0) {
        await postWithWrk(h.port, { prefix: `${prefix}warm`, seconds: o.warmup, connections: o.connections, endpoints: o.endpoints });
        await o.waitAllDone(`${prefix}warm-`);
      }
      await postWithWrk(h.port, { prefix: `${prefix}run`, seconds: o.seconds, connections: o.connections, endpoints: o.endpoints });
      const tasks = await o.waitAllDone(`${prefix}run-`);
      const rows = await h.query<{ start_time: unknown; end_time: unknown }>('SELECT start_time, end_time FROM task WHERE identifier LIKE ?', [`${prefix}run-%`]);
      const span = (Math.max(...rows.map((x) => o.toMs(x.end_time))) - Math.min(...rows.map((x) => o.toMs(x.start_time)))) / 1000;
      const e2e: number[] = [];
      for (let i = 0; i < o.latencyTasks; i++) {
        const identifier = `${prefix}lat-${i}`;
        const [sent] = await postAll(h.port, () => '/worker', () => JSON.stringify({ identifier, payload: o.payload, endpoints: o.endpoints }), 1, 1);
        for (;;) {
          const [row] = await h.query('SELECT status, end_time FROM task WHERE identifier = ?', [identifier]);
          if (row?.status === 'DONE') {
            e2e.push(o.toMs(row.end_time) - sent.sentAt);
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }
      runs.push({ isolation, tasks, completed_per_s: Math.round(tasks / span), e2e_p50_ms: round1(median(e2e)) });
    }
  }
  const of = (isolation: string): IsolationRun[] => runs.filter((x) => x.isolation === isolation);
  const processPerS = median(of('process').map((x) => x.completed_per_s));
  const nonePerS = median(of('none').map((x) => x.completed_per_s));
  const processP50 = median(of('process').map((x) => x.e2e_p50_ms));
  const noneP50 = median(of('none').map((x) => x.e2e_p50_ms));
  return {
    runs, seconds: o.seconds, connections: o.connections, endpoints: o.endpoints.length, latency_tasks: o.latencyTasks,
    process_completed_per_s: processPerS, none_completed_per_s: nonePerS, ratio: Math.round((processPerS / nonePerS) * 100) / 100,
    process_e2e_p50_ms: processP50, none_e2e_p50_ms: noneP50, added_p50_ms: round1(processP50 - noneP50),
  };
}
