import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A subscription's label `selector` (as written; null: none): it gets a task's events only when some
 * endpoint of the task matches, an `endpoint.stale` only when that endpoint matches (see WebhookStore).
 */
export class WebhookSelector1765520000000 implements MigrationInterface {
  name = 'WebhookSelector1765520000000';

  async up(q: QueryRunner): Promise<void> {
    const type = q.connection.driver.options.type === 'mysql' ? 'VARCHAR(1024)' : 'varchar(1024)';
    await q.query(`ALTER TABLE webhook ADD COLUMN selector ${type} NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE webhook DROP COLUMN selector');
  }
}
