import { execFileSync } from 'node:child_process';
import { MAX_ENDPOINTS } from '../api/schemas';
import type { Harness, Proc } from '../test/support/harness';
import { availableMb, ProcessMeter, rssMb, summary } from './stats';

function pidOf(name: string): number {
  try {
    return Number(execFileSync('pidof', ['-s', name], { encoding: 'utf8' }).trim()) || 0;
  } catch {
    return 0;
  }
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function toMs(t: unknown): number {
  const s = String(t);
  return Date.parse(s.includes('T') ? s : s.replace(' ', 'T') + 'Z');
}

/**
 * RabbitMQ takes as many connections as its open-file limit allows. The fleet runs on a node of the
 * bench's own, started under the hard limit; if even that is too low, the bench stops and says what to
 * change, rather than reconfigure a broker it did not start.
 */
async function checkBrokerSockets(h: Harness, needed: number): Promise<void> {
  let limit = 0;
  // A node just started shows its limits with its first statistics, a few seconds later.
  for (const deadline = Date.now() + 60_000; limit === 0 && Date.now() < deadline; await sleep(limit === 0 ? 500 : 0)) {
    const { json } = await h.admin().request('GET', '/nodes');
    limit = Number((json as { sockets_total?: number }[])[0]?.sockets_total ?? 0);
  }
  if (limit >= needed) return;
  throw new Error(`the bench's RabbitMQ node accepts ${limit} connections and the fleet needs ${needed}: `
    + `raise the hard open-file limit of the shell that runs the bench (ulimit -Hn, now ${execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()}) or give fewer endpoints`);
}

export interface NodeStats { mem_used: number; mem_limit: number; fd_used: number; sockets_used: number }

/** The bench's RabbitMQ node's memory (used, and the high watermark past which it blocks publishers) and descriptors. */
async function nodeStats(h: Harness): Promise<NodeStats> {
  const node = ((await h.admin().request('GET', '/nodes')).json as Partial<NodeStats>[])[0] ?? {};
  return { mem_used: Number(node.mem_used ?? 0), mem_limit: Number(node.mem_limit ?? 0), fd_used: Number(node.fd_used ?? 0), sockets_used: Number(node.sockets_used ?? 0) };
}

const MB = 2 ** 20;

/**
 * The node's figures once its statistics count `connections` sockets: the management API refreshes them
 * every few seconds, so a read right after the connections opened shows the node as it was before.
 */
async function settledStats(h: Harness, connections: number): Promise<NodeStats> {
  let stats = await nodeStats(h);
  for (const deadline = Date.now() + 30_000; stats.sockets_used < connections && Date.now() < deadline; stats = await nodeStats(h)) await sleep(1000);
  return stats;
}

/**
 * Whether the machine can hold the whole fleet, projected from its first manager processes: RabbitMQ's
 * memory per connection against the node's high watermark (past it the broker blocks every publisher,
 * the API included), and the managers' resident memory with the broker's growth against what the kernel
 * has available. Throws with the figures, so that a fleet too large ends in a sentence, not in blocked
 * publishers or the OOM killer.
 */
export function checkCapacity(o: { endpoints: number; started: number; perEndpointMqBytes: number; mq: NodeStats; managersMb: number; availableMb: number }): void {
  const remaining = o.endpoints - o.started;
  const mqNeeded = o.mq.mem_used + remaining * o.perEndpointMqBytes;
  const managersNeededMb = (o.managersMb / o.started) * remaining;
  const hostNeededMb = managersNeededMb + (remaining * o.perEndpointMqBytes) / MB;
  const problems: string[] = [];
  if (o.mq.mem_limit > 0 && mqNeeded > 0.9 * o.mq.mem_limit) {
    problems.push(`RabbitMQ would need about ${Math.round(mqNeeded / MB)} MB (${Math.round(o.perEndpointMqBytes / 1024)} KB per connection), `
      + `past 90 % of its high watermark of ${Math.round(o.mq.mem_limit / MB)} MB`);
  }
  if (hostNeededMb > 0.9 * o.availableMb) {
    problems.push(`the rest of the fleet would need about ${Math.round(hostNeededMb)} MB more (managers ${Math.round(o.managersMb / o.started * 1024)} KB `
      + `and RabbitMQ ${Math.round(o.perEndpointMqBytes / 1024)} KB per endpoint), and ${Math.round(o.availableMb)} MB are available`);
  }
  if (problems.length > 0) {
    throw new Error(`this machine cannot hold a fleet of ${o.endpoints} (measured on its first ${o.started}): ${problems.join('; ')}. Give fewer endpoints (--fleet).`);
  }
}

const BROADCAST_TABLES = ['task', 'task_response', 'task_event'];

/** Rows and bytes (data and indexes, as InnoDB counts its pages after ANALYZE) of the tables a broadcast writes. */
async function storage(h: Harness): Promise<Record<string, { rows: number; bytes: number }>> {
  await h.query(`ANALYZE TABLE ${BROADCAST_TABLES.join(', ')}`);
  const sizes = await h.query<{ name: string; bytes: unknown }>(`SELECT TABLE_NAME AS name, DATA_LENGTH + INDEX_LENGTH AS bytes
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${BROADCAST_TABLES.map(() => '?').join(', ')})`, BROADCAST_TABLES);
  const out: Record<string, { rows: number; bytes: number }> = {};
  for (const table of BROADCAST_TABLES) {
    const [row] = await h.query(`SELECT COUNT(*) AS n FROM ${table}`);
    out[table] = { rows: Number(row.n), bytes: Number(sizes.find((x) => x.name === table)?.bytes ?? 0) };
  }
  return out;
}

/** What `tasks` broadcasts added to each table, per broadcast. */
function perBroadcast(before: Record<string, { rows: number; bytes: number }>, after: Record<string, { rows: number; bytes: number }>, tasks: number): Record<string, { rows: number; kb: number }> {
  return Object.fromEntries(BROADCAST_TABLES.map((t) => [t, {
    rows: Math.round((after[t].rows - before[t].rows) / tasks), kb: Math.round((after[t].bytes - before[t].bytes) / tasks / 1024),
  }]));
}

async function waitDone(h: Harness, identifiers: string[], timeoutMs = 300_000): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await h.query<{ identifier: string; end_time: unknown }>(
      `SELECT identifier, end_time FROM task WHERE status = 'DONE' AND identifier IN (${identifiers.map(() => '?').join(', ')})`, identifiers);
    if (rows.length === identifiers.length) return new Map(rows.map((r) => [r.identifier, toMs(r.end_time)]));
    if (Date.now() > deadline) throw new Error(`${identifiers.length - rows.length} fleet tasks not DONE`);
    await sleep(5);
  }
}

/**
 * The server side's own storing rate: tasks whose handlers take 3 s are posted, the API is stopped before
 * they finish, so that all their results wait in the responses queue; then an API is started and stores
 * them. The rate is from the first of those responses stored to the last task DONE.
 */
async function drainBacklog(h: Harness, api: Proc, tasks: number, endpoints: number, env: Record<string, string>): Promise<Record<string, number>> {
  const ids = Array.from({ length: tasks }, (_v, i) => `fleet-backlog-${i}`);
  await Promise.all(ids.map(async (identifier) => {
    const res = await fetch(`${h.baseUrl}/worker`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identifier, payload: { sleep: 3 } }),
    });
    if (res.status !== 201) throw new Error(`POST ${identifier}: ${res.status}`);
  }));
  // Answered once stored (api.background_send_from), sent right after: stopped only once all are sent, or the
  // restarted API's resend job would be measured with the backlog.
  for (const deadline = Date.now() + 300_000; ;) {
    const [{ n }] = await h.query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM task WHERE identifier LIKE 'fleet-backlog-%' AND sent_time IS NOT NULL`);
    if (Number(n) === tasks) break;
    if (Date.now() > deadline) throw new Error(`backlog: ${tasks - Number(n)} tasks not sent within 300 s`);
    await sleep(100);
  }
  if (await api.stop() !== 0) throw new Error('the API did not stop cleanly');
  const eventsQueue = h.config.manager.message_queue.exchange + '.responses';
  // Every handler finished and reported once the endpoints' queues hold nothing, acknowledged or not (a
  // manager acknowledges a task after its result was confirmed). The management API's counts lag by up
  // to its 5 s statistics interval, hence the first wait; the responses queue keeps growing with the
  // endpoints' heartbeats, so its depth alone does not tell.
  await sleep(8000);
  const vhost = encodeURIComponent(h.config.manager.message_queue.virtual_host);
  for (;;) {
    const { json } = await h.admin().request('GET', `/queues/${vhost}?columns=name,messages`);
    const waiting = (json as { name: string; messages?: number }[])
      .filter((q) => q.name.startsWith(`${h.config.manager.message_queue.exchange}.worker.`))
      .reduce((n, q) => n + (q.messages ?? 0), 0);
    if (waiting === 0) break;
    await sleep(2000);
  }
  const last = await h.withChannel(async (ch) => (await ch.checkQueue(eventsQueue)).messageCount);
  // Results the stopping API stored still count as stored before: the rate is of what the new API stores,
  // from the first of those (by the database's clock) to the last task DONE.
  const [{ now: restart }] = await h.query<{ now: unknown }>('SELECT UTC_TIMESTAMP(3) AS now');
  await h.startApi(undefined, env);
  await waitDone(h, ids);
  const [span] = await h.query(`SELECT MIN(r.last_modified_time) AS first, MAX(t.end_time) AS last, COUNT(*) AS n
    FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier LIKE 'fleet-backlog-%' AND r.status = 1 AND r.last_modified_time >= ?`, [restart]);
  const [all] = await h.query(`SELECT COUNT(*) AS n FROM task_response r JOIN task t ON t.id = r.task_id
    WHERE t.identifier LIKE 'fleet-backlog-%' AND r.status = 1`);
  const stored = Number(span.n);
  const seconds = (toMs(span.last) - toMs(span.first)) / 1000;
  if (Number(all.n) !== tasks * endpoints) throw new Error(`backlog: ${all.n} responses, ${tasks * endpoints} expected`);
  return { messages: last, responses: stored, seconds: Math.round(seconds * 100) / 100, responses_per_s: Math.round(stored / seconds) };
}

/**
 * What resolving a selector adds to a POST: the time to its 201 for a task that names half the fleet and
 * for one whose selector matches the same half by label, alternately, each run to its end before the next
 * (a POST's time grows with its endpoints, for their rows: hence the same endpoints on both sides).
 */
async function selectorCost(h: Harness, tasks: number, half: string[]): Promise<Record<string, unknown>> {
  const timed = async (identifier: string, extra: Record<string, unknown>, expected: number): Promise<number> => {
    const t0 = performance.now();
    const res = await fetch(`${h.baseUrl}/worker`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identifier, payload: { sleep: 0 }, ...extra }),
    });
    const ms = performance.now() - t0;
    const body = await res.json() as { endpoints?: string[] };
    if (res.status !== 201 || body.endpoints?.length !== expected) throw new Error(`POST ${identifier}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    await waitDone(h, [identifier]);
    return ms;
  };
  const named: number[] = [];
  const selected: number[] = [];
  for (let i = 0; i < tasks; i++) {
    named.push(await timed(`fleet-named-${i}`, { endpoints: half }, half.length));
    selected.push(await timed(`fleet-sel-${i}`, { selector: 'group=g0' }, half.length));
  }
  const n = summary(named);
  const s = summary(selected);
  return {
    tasks, matching: half.length, named_post_ms: { p50: round1(n.p50), p99: round1(n.p99) }, selector_post_ms: { p50: round1(s.p50), p99: round1(s.p99) },
  };
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * The fleet workload: `endpoints` endpoints, each with its own AMQP connection, `perProcess` of them in
 * each manager process; broadcasts (tasks that list no endpoints) to all of them. Measures POST to DONE
 * one task at a time, responses stored per second with many tasks at once, the database connections
 * (sampled) and RabbitMQ's memory.
 */
export async function runFleet(h: Harness, o: {
  endpoints: number; perProcess: number; tasks: number; log: (m: string) => void; brokerPid?: number;
  /** For the system's processes only (the bench's own checks connect as before): e.g. TLS to the broker. */
  processEnv?: Record<string, string>;
}): Promise<Record<string, unknown>> {
  await checkBrokerSockets(h, o.endpoints + 100);
  const names = Array.from({ length: o.endpoints }, (_v, i) => `f${String(i + 1).padStart(5, '0')}`);
  let dbPeak = 0;
  let mqPeak = 0;
  const nodeMemory = async (): Promise<number> => (await nodeStats(h)).mem_used;
  const mqBefore = await nodeMemory();
  const sampler = setInterval(() => {
    void h.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [h.id])
      .then((rows) => { dbPeak = Math.max(dbPeak, Number(rows[0].n)); }, () => undefined);
    void nodeMemory().then((m) => { mqPeak = Math.max(mqPeak, m); }, () => undefined);
  }, 250);
  try {
    // The simulated endpoints run their no-op handler in their manager's process: 100 simulated servers in one
    // process would otherwise share that process's one pool of `manager.concurrency` workers, which a real
    // server has to itself. What the fleet measures is the server side and the broker.
    const env = { TASKER_MANAGER__ISOLATION: 'none', ...o.processEnv };
    const api = await h.startApi(undefined, env);
    h.discardStdout = true;
    const managers: Proc[] = [];
    const t0 = Date.now();
    o.log(`fleet: starting ${o.endpoints} endpoints, ${o.perProcess} per manager process`);
    const processes = Math.ceil(o.endpoints / o.perProcess);
    const registered = async (): Promise<number> => Number((await h.query(`SELECT COUNT(*) AS n FROM endpoint WHERE task_type = 'worker'`))[0].n);
    const managersMb = (): number => managers.reduce((sum, m) => sum + rssMb(m.child.pid ?? 0), 0);
    for (let i = 0; i < processes; i += 2) {
      managers.push(...await Promise.all([i, i + 1].filter((p) => p < processes)
        .map((p) => h.startManager(names.slice(p * o.perProcess, (p + 1) * o.perProcess), ['worker'], { TASKER_LABELS: `group=g${p % 2}`, ...env }))));
      if (i === 0 && processes > 2) {
        // The first two processes measure what an endpoint costs, before the machine is committed to all.
        const started = Math.min(o.endpoints, 2 * o.perProcess);
        while (await registered() < started) await sleep(200);
        const mq = await settledStats(h, started);
        checkCapacity({ endpoints: o.endpoints, started, perEndpointMqBytes: Math.max(0, mq.mem_used - mqBefore) / started, mq, managersMb: managersMb(), availableMb: availableMb() });
      }
    }
    while (await registered() < o.endpoints) await sleep(200);
    const startup = (Date.now() - t0) / 1000;
    const mqStarted = await settledStats(h, o.endpoints);
    const perConnectionKb = Math.round((mqStarted.mem_used - mqBefore) / o.endpoints / 1024);
    const managersRss = Math.round(managersMb());
    o.log(`fleet: ${o.endpoints} endpoints registered in ${startup.toFixed(1)} s; RabbitMQ ${Math.round(mqBefore / MB)} -> ${Math.round(mqStarted.mem_used / MB)} MB `
      + `(${perConnectionKb} KB per connection), ${mqStarted.fd_used} file descriptors, ${mqStarted.sockets_used} sockets; manager processes ${managersRss} MB RSS `
      + `(${Math.round(managersRss * 1024 / o.endpoints)} KB per endpoint); warm-up`);
    /** The POST's 201 of every broadcast, ms. */
    const answeredMs: number[] = [];
    const post = async (identifier: string): Promise<number> => {
      const sentAt = performance.timeOrigin + performance.now();
      const res = await fetch(`${h.baseUrl}/worker`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identifier, payload: { sleep: 0 } }),
      });
      const body = await res.json() as { endpoints?: string[] };
      if (res.status !== 201 || body.endpoints?.length !== o.endpoints) throw new Error(`POST ${identifier}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      answeredMs.push(performance.timeOrigin + performance.now() - sentAt);
      return sentAt;
    };
    for (let i = 0; i < 3; i++) {
      await post(`fleet-warm-${i}`);
      await waitDone(h, [`fleet-warm-${i}`]);
    }
    o.log(`fleet: ${o.tasks} tasks one after another`);
    const doneMs: number[] = [];
    for (let i = 0; i < o.tasks; i++) {
      const id = `fleet-seq-${i}`;
      const sentAt = await post(id);
      const ends = await waitDone(h, [id]);
      doneMs.push((ends.get(id) as number) - sentAt);
    }
    const d = summary(doneMs);
    const a = summary(answeredMs.slice(-o.tasks));
    o.log(`fleet: one task to all ${o.endpoints}, POST to 201: p50 ${Math.round(a.p50)} ms, p99 ${Math.round(a.p99)} ms; POST to DONE: p50 ${Math.round(d.p50)} ms, p99 ${Math.round(d.p99)} ms (${o.tasks} tasks)`);
    const half = names.filter((_n, i) => Math.floor(i / o.perProcess) % 2 === 0);
    let selector: Record<string, unknown> | null = null;
    if (half.length > MAX_ENDPOINTS) {
      o.log(`fleet: selector against names skipped: half the fleet (${half.length}) is more than a POST may name (${MAX_ENDPOINTS})`);
    } else {
      o.log(`fleet: POST to 201, ${o.tasks} naming half the fleet and ${o.tasks} to the selector group=g0 (the same half), alternately`);
      selector = await selectorCost(h, o.tasks, half);
      o.log(`fleet: POST to 201, ${selector.matching as number} named: p50 ${(selector.named_post_ms as { p50: number }).p50} ms; by selector: p50 ${(selector.selector_post_ms as { p50: number }).p50} ms`);
    }
    o.log(`fleet: ${o.tasks} tasks at once`);
    const ids = Array.from({ length: o.tasks }, (_v, i) => `fleet-many-${i}`);
    const meter = new ProcessMeter([{ name: 'api', pid: api.child.pid! }, ...managers.map((m, i) => ({ name: `managers ${i}`, pid: m.child.pid! })),
      { name: 'mariadbd', pid: pidOf('mariadbd') }, { name: 'rabbitmq (beam.smp)', pid: o.brokerPid ?? pidOf('beam.smp') }]);
    const stored = await storage(h);
    const sent = await Promise.all(ids.map((id) => post(id)));
    const ends = await waitDone(h, ids);
    const cpu = meter.read();
    const managersCpu = cpu.filter((p) => p.name.startsWith('managers')).reduce((a, p) => a + p.cpu_s, 0);
    const span = (Math.max(...ends.values()) - Math.min(...sent)) / 1000;
    const [check] = await h.query(`SELECT COUNT(*) AS n FROM task_response r JOIN task t ON t.id = r.task_id WHERE t.identifier LIKE 'fleet-many-%' AND r.status = 1`);
    const responses = Number(check.n);
    if (responses !== o.tasks * o.endpoints) throw new Error(`${responses} responses stored, ${o.tasks * o.endpoints} expected`);
    o.log(`fleet: ${o.tasks} tasks to all at once: every POST 201, ${responses} responses stored in ${span.toFixed(2)} s, ${Math.round(responses / span)} responses/s end to end`);
    const database = perBroadcast(stored, await storage(h), o.tasks);
    o.log(`fleet: per broadcast to ${o.endpoints}: ${BROADCAST_TABLES.map((t) => `${t} ${database[t].rows} rows, ${database[t].kb} KB`).join('; ')}`);
    o.log(`fleet: ${o.tasks} tasks at once while the API is stopped, then the backlog of results`);
    const backlog = await drainBacklog(h, api, o.tasks, o.endpoints, env);
    o.log(`fleet: backlog of ${backlog.responses} responses stored in ${backlog.seconds} s: ${backlog.responses_per_s} responses/s`);
    return {
      endpoints: o.endpoints, per_process: o.perProcess, processes, startup_s: Math.round(startup * 10) / 10,
      sequential: { tasks: o.tasks, answered_ms: { p50: Math.round(a.p50), p99: Math.round(a.p99) }, done_ms: { p50: Math.round(d.p50), p99: Math.round(d.p99) } },
      ...selector ? { selector } : {},
      sustained: {
        tasks: o.tasks, responses, seconds: Math.round(span * 100) / 100, responses_per_s: Math.round(responses / span),
        cpu_s: {
          api: cpu[0].cpu_s, managers: Math.round(managersCpu * 100) / 100,
          mariadbd: cpu[cpu.length - 2].cpu_s, rabbitmq: cpu[cpu.length - 1].cpu_s,
        },
      },
      backlog,
      database_per_broadcast: database,
      db_connections_peak: dbPeak, api_pool_size: h.config.manager.db.pool_size,
      rabbitmq_mb: { before: Math.round(mqBefore / MB), started: Math.round(mqStarted.mem_used / MB), peak: Math.round(mqPeak / MB) },
      rabbitmq_per_connection_kb: perConnectionKb, rabbitmq_fds: mqStarted.fd_used, managers_rss_mb: managersRss,
    };
  } finally {
    clearInterval(sampler);
    h.discardStdout = false;
  }
}
