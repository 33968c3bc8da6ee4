import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Execution deadlines: `task.timeout` is the run's bound in seconds as asked (or the configured default);
 * `task.deadline` is when it passes, on the database's clock: the task's creation plus the timeout, and
 * again its send plus the timeout once the broker (or an endpoint's answer) shows it sent. The deadline
 * sweep reads only tasks not ended (`end_time` NULL) whose deadline passed, hence the index. Tasks stored
 * before this migration and not ended get the default hour from their send (or creation); ended ones keep
 * none (the update touches only the few rows that need one).
 */
export class Deadlines1764500000000 implements MigrationInterface {
  name = 'Deadlines1764500000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query('ALTER TABLE task ADD COLUMN timeout INT NOT NULL DEFAULT 3600, ADD COLUMN deadline DATETIME(3) NULL');
      await q.query('UPDATE task SET deadline = COALESCE(sent_time, start_time) + INTERVAL 3600 SECOND WHERE end_time IS NULL');
      await q.query('CREATE INDEX idx_task_deadline ON task (end_time, deadline)');
    } else {
      await q.query('ALTER TABLE task ADD COLUMN timeout integer NOT NULL DEFAULT 3600');
      await q.query('ALTER TABLE task ADD COLUMN deadline datetime NULL');
      await q.query(`UPDATE task SET deadline = strftime('%Y-%m-%d %H:%M:%f', COALESCE(sent_time, start_time), '+3600 seconds') WHERE end_time IS NULL`);
      await q.query('CREATE INDEX idx_task_deadline ON task (end_time, deadline)');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(q.connection.driver.options.type === 'mysql' ? 'DROP INDEX idx_task_deadline ON task' : 'DROP INDEX idx_task_deadline');
    await q.query('ALTER TABLE task DROP COLUMN deadline');
    await q.query('ALTER TABLE task DROP COLUMN timeout');
  }
}
