import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `task.rows_pending`: 1 while a task is stored without its response rows (a task expecting at least
 * api.background_send_from endpoints: its POST writes one row, and the rows follow before its first
 * send; see ResponseRows). Indexed: readers across tasks look for the few such tasks.
 */
export class DeferredRows1765600000000 implements MigrationInterface {
  name = 'DeferredRows1765600000000';

  async up(q: QueryRunner): Promise<void> {
    const type = q.connection.driver.options.type === 'mysql' ? 'TINYINT NOT NULL DEFAULT 0' : 'integer NOT NULL DEFAULT 0';
    await q.query(`ALTER TABLE task ADD COLUMN rows_pending ${type}`);
    await q.query('CREATE INDEX idx_task_rows_pending ON task (rows_pending)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(q.connection.driver.options.type === 'mysql' ? 'DROP INDEX idx_task_rows_pending ON task' : 'DROP INDEX idx_task_rows_pending');
    await q.query('ALTER TABLE task DROP COLUMN rows_pending');
  }
}
