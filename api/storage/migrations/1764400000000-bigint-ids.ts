import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every id, and every column holding one, as a signed BIGINT on MySQL/MariaDB (2^63 - 1; the API's limit
 * is 2^53 - 1, see sql-values' readId, far below either).
 *
 * Migrations 1764000000000 and later already create or convert all of them to BIGINT, so on a database
 * that tasker's migrations built this changes nothing and rebuilds no table. It converts whichever of them
 * is still narrower (a database restored from a dump made elsewhere, or altered by hand), because a 32-bit
 * response id runs out in days at the throughput target. The foreign key from task_response to task
 * must be dropped while either of its columns changes type, and is re-created after.
 *
 * SQLite needs nothing: an INTEGER PRIMARY KEY is the 64-bit rowid, and every integer it stores is 64-bit.
 *
 * `down` changes nothing: narrowing would truncate the ids beyond 2^31 that the tables may hold by then,
 * and the schema before this migration already had these columns as BIGINT.
 */
export const ID_COLUMNS: readonly (readonly [table: string, column: string, generated: boolean])[] = [
  ['task', 'id', true],
  ['task_response', 'id', true],
  ['task_response', 'task_id', false],
  ['task_event', 'id', true],
  ['task_event', 'task_id', false],
  ['endpoint', 'id', true],
  ['request_key', 'id', true],
  ['api_token', 'id', true],
  ['schedule', 'id', true],
];

const FK_COLUMNS = new Set(['task.id', 'task_response.task_id']);

export class BigintIds1764400000000 implements MigrationInterface {
  name = 'BigintIds1764400000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type !== 'mysql') return;
    const narrow = await this.narrowColumns(q);
    if (narrow.length === 0) return;
    const touchesFk = narrow.some(([table, column]) => FK_COLUMNS.has(`${table}.${column}`));
    if (touchesFk) await q.query('ALTER TABLE task_response DROP FOREIGN KEY fk_response_task');
    const byTable = new Map<string, string[]>();
    for (const [table, column, generated] of narrow) {
      byTable.set(table, [...byTable.get(table) ?? [], `MODIFY \`${column}\` BIGINT NOT NULL${generated ? ' AUTO_INCREMENT' : ''}`]);
    }
    // One ALTER per table: each is a rebuild of the table.
    for (const [table, changes] of byTable) await q.query(`ALTER TABLE \`${table}\` ${changes.join(', ')}`);
    if (touchesFk) {
      await q.query('ALTER TABLE task_response ADD CONSTRAINT fk_response_task FOREIGN KEY (task_id) REFERENCES task (id) ON DELETE CASCADE');
    }
  }

  async down(): Promise<void> {
    // See above: nothing to undo.
  }

  /** The id columns that are not BIGINT yet. */
  private async narrowColumns(q: QueryRunner): Promise<(typeof ID_COLUMNS)[number][]> {
    const rows = await q.query(
      `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()`) as
      { t: string; c: string; type: string }[];
    const types = new Map(rows.map((r) => [`${r.t}.${r.c}`, r.type.toLowerCase()]));
    return ID_COLUMNS.filter(([table, column]) => {
      const type = types.get(`${table}.${column}`);
      if (type === undefined) throw new Error(`migration BigintIds: column ${table}.${column} does not exist`);
      return type !== 'bigint';
    });
  }
}
