import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The resend job's backoff per task: how many sends of the task failed in a row, and the time (on the
 * database's clock) before which the job does not try it again. NULL: due as soon as the job's own rules
 * say (`api.resend_after`). Both are cleared by a send that succeeds.
 */
export class ResendBackoff1764600000000 implements MigrationInterface {
  name = 'ResendBackoff1764600000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      // One ALTER: MariaDB adds both columns in place, without rebuilding the table.
      await q.query('ALTER TABLE task ADD COLUMN send_failures INT NOT NULL DEFAULT 0, ADD COLUMN next_send_time DATETIME(3) NULL');
    } else {
      await q.query('ALTER TABLE task ADD COLUMN send_failures integer NOT NULL DEFAULT 0');
      await q.query('ALTER TABLE task ADD COLUMN next_send_time datetime NULL');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE task DROP COLUMN next_send_time');
    await q.query('ALTER TABLE task DROP COLUMN send_failures');
  }
}
