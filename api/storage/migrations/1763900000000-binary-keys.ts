import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Identifiers, task types and endpoint names are case-sensitive keys (`ABC` and `abc` are two tasks), but
 * the tables were created with the connection's case-insensitive collation, under which the unique keys
 * and every lookup treat them as one. Binary collation on MySQL; SQLite compares text bytewise already.
 * MySQL rebuilds the tables to change it, blocking writes meanwhile: on a large existing database, let
 * the first process to start after the upgrade migrate while the others are stopped. `down` fails once
 * identifiers that differ only by case exist, as it must.
 */
const COLUMNS: [table: string, column: string, length: number][] = [
  ['task', 'identifier', 64],
  ['task', 'type', 32],
  ['task_response', 'endpoint', 64],
  ['endpoint', 'task_type', 32],
  ['endpoint', 'name', 64],
];

export class BinaryKeys1763900000000 implements MigrationInterface {
  name = 'BinaryKeys1763900000000';

  private async collate(q: QueryRunner, collation: string): Promise<void> {
    if (q.connection.driver.options.type !== 'mysql') return;
    const byTable = new Map<string, string[]>();
    for (const [table, column, length] of COLUMNS) {
      byTable.set(table, [...byTable.get(table) ?? [],
        `MODIFY \`${column}\` varchar(${length}) CHARACTER SET utf8mb4 COLLATE ${collation} NOT NULL`]);
    }
    for (const [table, changes] of byTable) await q.query(`ALTER TABLE \`${table}\` ${changes.join(', ')}`);
  }

  async up(q: QueryRunner): Promise<void> {
    await this.collate(q, 'utf8mb4_bin');
  }

  async down(q: QueryRunner): Promise<void> {
    await this.collate(q, 'utf8mb4_unicode_ci');
  }
}
