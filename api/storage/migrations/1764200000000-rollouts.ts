import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rolling sends: `task.rollout` holds a rollout's sizes (as asked, and resolved against the expected
 * endpoints); `task_response.sent_time` is when the broker confirmed the send to one endpoint of a rollout,
 * which starts that endpoint's wait and tells the resend job which decided sends never reached the broker.
 * Both null for every other task, whose rows keep being written as before.
 */
export class Rollouts1764200000000 implements MigrationInterface {
  name = 'Rollouts1764200000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query('ALTER TABLE task ADD COLUMN rollout TEXT NULL');
      await q.query('ALTER TABLE task_response ADD COLUMN sent_time DATETIME(3) NULL');
    } else {
      await q.query('ALTER TABLE task ADD COLUMN rollout text NULL');
      await q.query('ALTER TABLE task_response ADD COLUMN sent_time datetime NULL');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE task_response DROP COLUMN sent_time');
    await q.query('ALTER TABLE task DROP COLUMN rollout');
  }
}
