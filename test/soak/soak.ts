import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCertificates, TestCertificates } from '../support/certificates';
import { Harness } from '../support/harness';
import { PrivateMariadb } from '../support/private-mariadb';
import { RabbitCluster } from '../support/rabbit-cluster';
import { amqpsEnv, requireSslUser } from '../support/tls-env';
import { FaultRecord, faultTimer } from './faults';
import { LifeSampler } from './lives';
import { loggedProblems, silentProcesses } from './logs';
import { steadyLoad } from './load';
import { IsolatedPm2 } from '../support/pm2';
import { judge, Verdict } from './rss-trend';
import { REMEMBERED } from '../../manager/endpoint-manager';

/**
 * `npm run test:soak`: the API and three endpoint managers under pm2 (its own daemon), a MariaDB of the
 * soak's own and the shared RabbitMQ on a vhost of its own, under a steady load for TASKER_SOAK_SECONDS,
 * with faults on a timer. With TASKER_SOAK_TLS=1 every connection of the system's processes is TLS: to a
 * RabbitMQ node of the soak's own (AMQPS, client certificates) and to its MariaDB (whose application user
 * requires SSL); the soak's own checks use the node's plain listener. Then: every accepted task DONE, one finished response per (task, endpoint),
 * every handler run at least once, the vhost's queues empty, every process's RSS flat after its warm-up.
 * Prints a summary; exits 0 on PASS, 1 on FAIL. Everything it made is removed, whatever happens.
 */
const env = process.env;
const num = (name: string, def: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number; got '${v}'`);
  return n;
};
const SECONDS = num('TASKER_SOAK_SECONDS', 1200);
const RATE = num('TASKER_SOAK_RATE', 100);
const FAULT_INTERVAL_S = num('TASKER_SOAK_FAULT_INTERVAL', Math.max(20, SECONDS / 10));
const DRAIN_S = num('TASKER_SOAK_DRAIN_SECONDS', 300);
const MAX_GROWTH = 0.10;
const WINDOW_S = Math.max(5, Math.min(60, SECONDS / 12));
const MANAGERS = ['console1', 'console2', 'console3'];
const TLS = env.TASKER_SOAK_TLS === '1';
if (env.TASKER_SOAK_TLS !== undefined && !['0', '1', ''].includes(env.TASKER_SOAK_TLS)) throw new Error(`TASKER_SOAK_TLS must be 0 or 1; got '${env.TASKER_SOAK_TLS}'`);
const MIN_WARMUP_S = 60;
/**
 * After a database restart the API's RSS rises for up to two minutes (it holds requests and events, then V8
 * keeps the heap it grew for a while), so a last quarter judged by its median must be at least twice that:
 * runs of 16 minutes or more. A shorter run (the 2-minute one of `.ci/run`) checks only the ceiling below.
 */
const MIN_LAST_QUARTER_S = 240;
/** Any life above this is a gross leak whatever the run's length (normal peaks: API ~190, managers ~145). */
const MAX_RSS_MIB = num('TASKER_SOAK_MAX_RSS_MIB', 320);
/**
 * A manager remembers the last REMEMBERED tasks it finished, so its memory grows until that cache is full:
 * each manager is sent every task, so after REMEMBERED / RATE seconds. Its warm-up lasts that long and a
 * window more.
 */
const warmupOf = (process: string): number =>
  (process.startsWith('tasker-manager-') ? Math.max(MIN_WARMUP_S, REMEMBERED / RATE + WINDOW_S) : MIN_WARMUP_S);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const say = (text: string): void => { process.stdout.write(`${text}\n`); };

interface Outcome {
  failures: string[];
  faults: FaultRecord[];
  verdicts: Verdict[];
  lines: string[];
}

async function queuesEmpty(h: Harness, vhost: string, timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  let busy: string[] = [];
  for (;;) {
    const { json } = await h.admin().request('GET', `/queues/${encodeURIComponent(vhost)}`);
    busy = ((Array.isArray(json) ? json : []) as { name: string; messages?: number }[])
      .filter((q) => (q.messages ?? 0) > 0).map((q) => `${q.name}=${q.messages}`);
    if (busy.length === 0) return null;
    if (Date.now() > deadline) return `queues not empty: ${busy.join(', ')}`;
    await sleep(2000);
  }
}

/** The system's processes' connections (named `tasker...`; the soak's own checks are not) that are not TLS. */
async function plainConnections(h: Harness, vhost: string): Promise<{ tls: number; names: string[] }> {
  type Conn = { ssl?: boolean; client_properties?: { connection_name?: string } };
  const { json } = await h.admin().request('GET', `/vhosts/${encodeURIComponent(vhost)}/connections?columns=ssl,client_properties`);
  const mine = ((Array.isArray(json) ? json : []) as Conn[]).filter((c) => String(c.client_properties?.connection_name).startsWith('tasker'));
  return { tls: mine.filter((c) => c.ssl === true).length, names: mine.filter((c) => c.ssl !== true).map((c) => String(c.client_properties?.connection_name)) };
}

/** A few dead letters, left in their queue: what they are and why they were refused. */
async function deadLetters(h: Harness, queue: string): Promise<string[]> {
  return h.withChannel(async (ch) => {
    const out: string[] = [];
    for (let i = 0; i < 5; i++) {
      const m = await ch.get(queue, { noAck: false });
      if (!m) break;
      out.push(`type ${String(m.properties.type)}: ${m.content.toString('utf8').slice(0, 300)}`);
    }
    return out;
  });
}

async function soak(h: Harness, db: PrivateMariadb, pm2: IsolatedPm2): Promise<Outcome> {
  const failures: string[] = [];
  const lines: string[] = [];
  const vhost = h.config.manager.message_queue.virtual_host;
  await pm2.start();
  const t0 = Date.now();
  const sampler = new LifeSampler(pm2, t0);
  await sampler.refresh();
  sampler.start(2000);
  const load = steadyLoad({ port: h.port, rate: RATE, endpoints: MANAGERS, broadcastEvery: 20, sleepS: 0.02, prefix: `soak${t0}` });
  const faults = faultTimer({ pm2, db, admin: h.admin(), vhost, managers: MANAGERS.map((m) => `tasker-manager-${m}`) }, FAULT_INTERVAL_S, t0, () => sampler.refresh());
  const refresher = setInterval(() => { void sampler.refresh().catch(() => undefined); }, 15_000);
  try {
    await sleep(SECONDS * 1000);
  } finally {
    await faults.stop();
    await load.stop();
    clearInterval(refresher);
  }
  const loadEnd = (Date.now() - t0) / 1000;
  const t = load.totals;
  lines.push(`load: ${t.sent} POSTs in ${loadEnd.toFixed(0)} s (${(t.sent / loadEnd).toFixed(1)}/s); ${t.accepted.length} accepted (2xx); refused ${JSON.stringify(t.refused)}; no answer ${t.failed}; skipped (client backlog) ${t.skipped}`);
  const drainStart = Date.now();
  try {
    await h.checkInvariants(t.accepted, MANAGERS.map((m) => `tasker.worker.${m}`), DRAIN_S * 1000);
  } catch (err) {
    failures.push(`invariants: ${(err as Error).message}`);
  }
  lines.push(`drain: every accepted task DONE ${((Date.now() - drainStart) / 1000).toFixed(1)} s after the load stopped`);
  const runs = await h.query<{ rows: number; runs: number; never: number; again: number }>(
    'SELECT COUNT(*) AS `rows`, SUM(attempts) AS runs, SUM(attempts < 1) AS never, SUM(attempts > 1) AS again FROM task_response');
  const r = runs[0];
  lines.push(`responses: ${r.rows} rows; handler runs ${r.runs} (${r.again} rows ran more than once: at-least-once after kills)`);
  if (Number(r.never) > 0) failures.push(`${r.never} responses whose handler never ran`);
  const stored = await h.query<{ n: number }>("SELECT COUNT(*) AS n FROM task WHERE status <> 'DONE'");
  if (Number(stored[0].n) > 0) failures.push(`${stored[0].n} stored tasks not DONE (including any whose POST got no answer)`);
  const queues = await queuesEmpty(h, vhost, 60_000);
  if (queues) {
    failures.push(queues);
    for (const d of await deadLetters(h, 'tasker.dead-letter')) lines.push(`dead letter: ${d}`);
  }
  if (TLS) {
    const plain = await plainConnections(h, vhost);
    lines.push(`TLS: ${plain.tls} connections of the system's processes over AMQPS at the end${plain.names.length ? `; plain: ${plain.names.join(', ')}` : ''}`);
    if (plain.tls === 0 || plain.names.length > 0) failures.push(`with TLS on, ${plain.names.length} plain connections (${plain.names.join(', ')}) and ${plain.tls} over TLS`);
  }
  const problems = loggedProblems(pm2.home);
  lines.push(`warnings and errors logged: ${problems.length === 0 ? 'none' : ''}`, ...problems.slice(0, 15).map((p) => `  ${p}`));
  sampler.stop();
  const verdicts = sampler.lives.map((life) => judge({ ...life, samples: life.samples.filter((s) => s.t <= loadEnd) }, WINDOW_S, MAX_GROWTH, warmupOf(life.name), MIN_LAST_QUARTER_S));
  const series = path.join(os.tmpdir(), `tasker-soak-rss-${t0}.json`);
  writeFileSync(series, JSON.stringify(sampler.lives));
  lines.push(`RSS samples of every process: ${series}`);
  for (const v of verdicts) if (!v.ok) failures.push(`RSS of ${v.life} grew ${((v.growth ?? 0) * 100).toFixed(1)} % (${v.referenceMiB?.toFixed(1)} → ${v.lastMiB?.toFixed(1)} MiB)`);
  for (const v of verdicts) if (v.peakMiB > MAX_RSS_MIB) failures.push(`RSS of ${v.life} reached ${v.peakMiB.toFixed(1)} MiB (ceiling ${MAX_RSS_MIB})`);
  if (SECONDS / 4 >= MIN_LAST_QUARTER_S && !verdicts.some((v) => v.judged && v.life.startsWith('tasker-api'))) failures.push('the API\'s RSS could not be judged');
  const processes = await pm2.list();
  const silent = silentProcesses(pm2.home, [...new Set(processes.map((p) => p.name))]);
  if (silent.length > 0) failures.push(`no log line reached pm2's log files from ${silent.join(', ')}`);
  const killed = faults.records.filter((f) => f.kind === 'manager killed');
  const restarts = processes.filter((p) => p.name.startsWith('tasker-manager-')).reduce((a, p) => a + p.restarts, 0);
  if (restarts < killed.length) failures.push(`${killed.length} managers killed, pm2 restarted ${restarts}`);
  failures.push(...faults.records.filter((f) => f.detail.startsWith('FAILED')).map((f) => `fault ${f.kind} at ${f.at}s ${f.detail}`));
  return { failures, faults: faults.records, verdicts, lines };
}

function report(o: Outcome): void {
  say('\n== soak summary');
  say(`duration ${SECONDS} s at ${RATE} POSTs/s (1 in 20 a broadcast), faults every ${FAULT_INTERVAL_S} s, RSS windows of ${WINDOW_S} s, warm-up the first quarter of each process's life (at least ${MIN_WARMUP_S} s; a manager's at least ${warmupOf('tasker-manager-')} s, until its cache of ${REMEMBERED} finished tasks is full)`);
  for (const l of o.lines) say(l);
  say(`faults injected: ${o.faults.length}`);
  for (const f of o.faults) say(`  ${String(f.at).padStart(5)} s  ${f.kind}: ${f.detail}`);
  say(`RSS (MiB): process, start, end, peak (ceiling ${MAX_RSS_MIB}), after warm-up (larger median of its first two windows), last quarter (median), growth; a last quarter under ${MIN_LAST_QUARTER_S} s is not judged`);
  for (const v of o.verdicts) {
    say(`  ${v.life.padEnd(36)} ${v.startMiB.toFixed(1).padStart(6)} ${v.endMiB.toFixed(1).padStart(6)} ${v.peakMiB.toFixed(1).padStart(6)}${v.peakMiB > MAX_RSS_MIB ? ' OVER' : ''} `
      + (v.judged ? `${v.referenceMiB?.toFixed(1).padStart(6)} ${v.lastMiB?.toFixed(1).padStart(6)} ${((v.growth ?? 0) * 100).toFixed(1).padStart(5)} %${v.ok ? '' : '  TOO MUCH'}` : '  (life too short to judge the trend)'));
  }
  say(o.failures.length === 0 ? 'RESULT: PASS' : `RESULT: FAIL\n${o.failures.map((f) => `  - ${f}`).join('\n')}`);
}

/** A RabbitMQ node of the soak's own with an AMQPS listener, and the environment that sends the system's processes over TLS. */
async function tlsBroker(certs: TestCertificates): Promise<{ cluster: RabbitCluster; processEnv: NodeJS.ProcessEnv }> {
  const cluster = new RabbitCluster(1, { tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } });
  await cluster.start();
  return {
    cluster,
    processEnv: amqpsEnv(cluster, certs),
  };
}

async function main(): Promise<number> {
  const certs = TLS ? await makeCertificates() : null;
  const db = new PrivateMariadb(certs ? { tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } } : {});
  let broker: { cluster: RabbitCluster; processEnv: NodeJS.ProcessEnv } | null = null;
  let h: Harness | null = null;
  let pm2: IsolatedPm2 | null = null;
  let aborted = false;
  const cleanup = async (): Promise<void> => {
    await pm2?.kill();
    await h?.teardown().catch((err: unknown) => say(`teardown: ${(err as Error).message}`));
    await db.destroy();
    await broker?.cluster.destroy();
    certs?.remove();
  };
  const onSignal = (): void => {
    if (aborted) return;
    aborted = true;
    say('interrupted: cleaning up');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await db.start();
    if (certs) broker = await tlsBroker(certs);
    h = new Harness({
      waitTimeout: 3600,
      env: {
        TASKER_TEST_DB_PORT: String(db.port), TASKER_LOG_LEVEL: 'warn', TASKER_MODE: 'test',
        TASKER_MANAGER__ENDPOINTS: `[${MANAGERS.join(', ')}]`, TASKER_MANAGER__DB__POOL_SIZE: '10',
        // Handlers in the managers' own processes, as the soak's figures were taken (isolation has its own suite).
        TASKER_MANAGER__ISOLATION: 'none',
        ...broker?.cluster.testEnv(),
        // The database over TLS for every process and the soak's own looks alike: its user requires it.
        ...certs ? { TASKER_MANAGER__DB__TLS__ENABLED: 'true', TASKER_MANAGER__DB__TLS__CA: certs.ca } : {},
      },
    });
    await h.setup();
    if (certs) await requireSslUser(db.port, h.config.manager.db.uri);
    pm2 = new IsolatedPm2({ ...h.env, ...broker?.processEnv });
    say(`soak: ${SECONDS} s; private MariaDB on port ${db.port}; vhost ${h.config.manager.message_queue.virtual_host}; PM2_HOME ${pm2.home}`
      + (broker ? `; TLS: RabbitMQ node of its own, AMQPS on port ${broker.cluster.nodes[0].amqpsPort}, MariaDB user REQUIRE SSL` : ''));
    const outcome = await soak(h, db, pm2);
    report(outcome);
    return outcome.failures.length === 0 ? 0 : 1;
  } catch (err) {
    say(`RESULT: FAIL\n  - ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    if (!aborted) await cleanup();
  }
}

void main().then((code) => process.exit(code));
