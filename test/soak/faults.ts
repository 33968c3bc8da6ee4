import type { RabbitAdmin } from '../../api/rabbit-admin';
import type { PrivateMariadb } from '../support/private-mariadb';
import type { IsolatedPm2 } from '../support/pm2';

export interface FaultRecord {
  at: number;
  kind: string;
  detail: string;
}

export interface FaultTargets {
  pm2: IsolatedPm2;
  db: PrivateMariadb;
  admin: RabbitAdmin;
  /** The soak's own vhost: only its connections are ever closed. */
  vhost: string;
  managers: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Closes every connection of the soak's vhost (never another vhost's) through the management API. */
async function closeConnections(t: FaultTargets): Promise<string> {
  const { json } = await t.admin.request('GET', `/vhosts/${encodeURIComponent(t.vhost)}/connections`);
  const conns = (Array.isArray(json) ? json : []) as { name: string; vhost: string }[];
  const mine = conns.filter((c) => c.vhost === t.vhost);
  for (const c of mine) {
    await t.admin.request('DELETE', `/connections/${encodeURIComponent(c.name)}`, undefined, [404]);
  }
  return `${mine.length} connections closed`;
}

/** SIGKILLs a manager's process by its PID and waits for pm2 to have started it again. */
async function killManager(t: FaultTargets, name: string): Promise<string> {
  const before = (await t.pm2.list()).find((p) => p.name === name);
  if (!before || before.pid <= 0) throw new Error(`${name} is not running under pm2`);
  process.kill(before.pid, 'SIGKILL');
  const deadline = Date.now() + 60_000;
  for (;;) {
    await sleep(500);
    const now = (await t.pm2.list()).find((p) => p.name === name);
    if (now && now.status === 'online' && now.pid > 0 && now.pid !== before.pid) return `${name} pid ${before.pid} killed, pm2 restarted it as pid ${now.pid}`;
    if (Date.now() > deadline) throw new Error(`pm2 did not restart ${name} within 60 s`);
  }
}

async function restartDatabase(t: FaultTargets): Promise<string> {
  const started = Date.now();
  await t.db.restart();
  return `private MariaDB restarted in ${((Date.now() - started) / 1000).toFixed(1)} s`;
}

/**
 * Faults on a timer, in turn: the vhost's broker connections closed, a manager killed (each in turn),
 * the database restarted. `onChange` runs after each, so that a manager's new life is sampled.
 */
export function faultTimer(t: FaultTargets, intervalS: number, t0: number, onChange: () => Promise<void>): { records: FaultRecord[]; stop(): Promise<void> } {
  const records: FaultRecord[] = [];
  let n = 0;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const inject = async (): Promise<void> => {
    const i = n++;
    const kinds = ['broker connections closed', 'manager killed', 'database restarted'] as const;
    const kind = kinds[i % kinds.length];
    const at = Math.round((Date.now() - t0) / 1000);
    let detail: string;
    try {
      if (kind === 'broker connections closed') detail = await closeConnections(t);
      else if (kind === 'manager killed') detail = await killManager(t, t.managers[Math.floor(i / kinds.length) % t.managers.length]);
      else detail = await restartDatabase(t);
    } catch (err) {
      detail = `FAILED: ${(err as Error).message}`;
    }
    records.push({ at, kind, detail });
    process.stdout.write(`  [${at}s] ${kind}: ${detail}\n`);
    // A failed look at pm2 must not stop the faults that follow.
    await onChange().catch((err: unknown) => { process.stdout.write(`  could not refresh the PIDs: ${(err as Error).message}\n`); });
  };
  const timer = setInterval(() => {
    if (!stopped) running = running.then(inject);
  }, intervalS * 1000);
  return {
    records,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
