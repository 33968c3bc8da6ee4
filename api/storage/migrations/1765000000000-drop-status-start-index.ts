import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `ix_task_status_start` (status, start_time) served the first resend job, which picked CREATED tasks by
 * their creation; it picks them by `last_modified_time` now (`ix_task_status_modified`), and no query
 * reads by status and start time. Every status change of every task moved an entry in it.
 */
export class DropStatusStartIndex1765000000000 implements MigrationInterface {
  name = 'DropStatusStartIndex1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(q.connection.driver.options.type === 'mysql' ? 'DROP INDEX ix_task_status_start ON task' : 'DROP INDEX ix_task_status_start');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX ix_task_status_start ON task (status, start_time)');
  }
}
