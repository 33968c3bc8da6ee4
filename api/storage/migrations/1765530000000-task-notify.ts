import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A task's own `notify` URL (null: none): its end (done, incomplete, stopped, cancelled) is POSTed there,
 * signed with api.webhooks.notify_secret, through the webhook outbox (rows of webhook_id 0).
 */
export class TaskNotify1765530000000 implements MigrationInterface {
  name = 'TaskNotify1765530000000';

  async up(q: QueryRunner): Promise<void> {
    const type = q.connection.driver.options.type === 'mysql' ? 'VARCHAR(2048)' : 'varchar(2048)';
    await q.query(`ALTER TABLE task ADD COLUMN notify_url ${type} NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE task DROP COLUMN notify_url');
  }
}
