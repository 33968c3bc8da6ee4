import type { DataSource } from 'typeorm';
import { dialectOf, exclusive } from './database';
import { sqlTime } from './sql-values';

/**
 * Which endpoints serve which task type. Managers register on start and then send heartbeats; a task
 * that lists no endpoints is expected from those registered for its type and heard from recently.
 */
export class EndpointRegistry {
  constructor(private readonly ds: DataSource) {}

  /** Registers or refreshes (heartbeat) the endpoint for each of its task types. */
  async heartbeat(name: string, taskTypes: readonly string[], now: Date): Promise<void> {
    if (taskTypes.length === 0) return;
    const t = sqlTime(now);
    const values = taskTypes.map(() => '(?, ?, ?, ?)').join(', ');
    const params = taskTypes.flatMap((type) => [type, name, t, t]);
    const upsert = dialectOf(this.ds) === 'mysql'
      ? 'ON DUPLICATE KEY UPDATE last_heartbeat = VALUES(last_heartbeat)'
      : 'ON CONFLICT (task_type, name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat';
    await exclusive(this.ds, () => this.ds.query(`INSERT INTO endpoint (task_type, name, first_seen, last_heartbeat) VALUES ${values} ${upsert}`, params));
  }

  /** Endpoint names of the type with a heartbeat after `since`, sorted. */
  async activeFor(taskType: string, since: Date): Promise<string[]> {
    const rows: { name: string }[] = await exclusive(this.ds, () => this.ds.query(
      'SELECT name FROM endpoint WHERE task_type = ? AND last_heartbeat >= ? ORDER BY name', [taskType, sqlTime(since)]));
    return rows.map((r) => r.name);
  }
}
