import type { DataSource } from 'typeorm';
import { DeadlineError } from '../lib/errors';
import { withDeadline } from '../lib/retry';
import { exclusive, isTransientDbError } from './storage/database';

/** How long the database may take to answer a readiness check before it counts as down. */
export const READY_TIMEOUT_MS = 1000;

export interface Readiness {
  ready: boolean;
  /** One entry per dependency: `up`/`current` when fine, else `down: <why>` (no internals). */
  checks: Record<string, string>;
}


/**
 * What `/readyz` and the `tasker_database_up` gauge ask: can this process reach its database and its
 * broker, and is the schema the code expects in place. Concurrent checks (a load balancer and a scrape
 * at once) share one round trip to the database.
 */
export class HealthChecks {
  private inFlight: Promise<Readiness> | null = null;
  /**
   * The database probe still waiting for its answer: a stalled server never answers, and a new probe per
   * check would take one pool connection each until the statement limit frees it.
   */
  private probe: Promise<unknown> | null = null;
  /** Migrations never go back while the process runs: once current, not asked again. */
  private migrationsCurrent = false;

  constructor(
    private readonly ds: DataSource,
    private readonly brokerConnected: () => boolean,
    private readonly timeoutMs = READY_TIMEOUT_MS,
  ) {}

  readiness(): Promise<Readiness> {
    this.inFlight ??= this.check().finally(() => { this.inFlight = null; });
    return this.inFlight;
  }

  async databaseUp(): Promise<boolean> {
    return (await this.readiness()).checks.database === 'up';
  }

  private async check(): Promise<Readiness> {
    const checks: Record<string, string> = {};
    checks.database = await this.database();
    checks.migrations = checks.database !== 'up' ? 'unknown: database down' : await this.migrations();
    checks.broker = this.brokerConnected() ? 'up' : 'down: not connected';
    const ready = checks.database === 'up' && checks.migrations === 'current' && checks.broker === 'up';
    return { ready, checks };
  }

  private async database(): Promise<string> {
    try {
      this.probe ??= exclusive(this.ds, () => this.ds.query('SELECT 1')).finally(() => { this.probe = null; });
      await withDeadline(this.probe, this.timeoutMs, 'the database probe');
      return 'up';
    } catch (err) {
      if (err instanceof DeadlineError) return `down: no answer within ${this.timeoutMs} ms`;
      return isTransientDbError(err) || !this.ds.isInitialized ? 'down: unreachable' : 'down: query failed';
    }
  }

  private async migrations(): Promise<string> {
    if (this.migrationsCurrent) return 'current';
    const table = this.ds.options.migrationsTableName ?? 'migrations';
    try {
      const rows: { name: string }[] = await withDeadline(exclusive(this.ds, () => this.ds.query(`SELECT name FROM ${table}`)), this.timeoutMs, 'the migrations read');
      const applied = new Set(rows.map((r) => String(r.name)));
      const pending = this.ds.migrations.filter((m) => !applied.has(m.name ?? m.constructor.name)).length;
      if (pending > 0) return `down: ${pending} migration${pending === 1 ? '' : 's'} pending`;
      this.migrationsCurrent = true;
      return 'current';
    } catch (err) {
      return err instanceof DeadlineError ? `unknown: no answer within ${this.timeoutMs} ms` : 'unknown: could not read the migrations';
    }
  }
}
