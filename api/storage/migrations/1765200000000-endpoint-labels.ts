import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `endpoint.labels` and `endpoint.facts`: the labels and facts of an endpoint's latest register or
 * heartbeat, as JSON text (NULL: it sent none). `task.selector`: the label selector a task was addressed
 * with; its `endpoints` hold what the selector resolved to when the task was created. `schedule.selector`:
 * the selector each firing's task is addressed with.
 */
export class EndpointLabels1765200000000 implements MigrationInterface {
  name = 'EndpointLabels1765200000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query('ALTER TABLE endpoint ADD COLUMN labels TEXT NULL, ADD COLUMN facts TEXT NULL');
      await q.query('ALTER TABLE task ADD COLUMN selector VARCHAR(1024) NULL');
      await q.query('ALTER TABLE schedule ADD COLUMN selector VARCHAR(1024) NULL');
    } else {
      await q.query('ALTER TABLE endpoint ADD COLUMN labels text NULL');
      await q.query('ALTER TABLE endpoint ADD COLUMN facts text NULL');
      await q.query('ALTER TABLE task ADD COLUMN selector varchar(1024) NULL');
      await q.query('ALTER TABLE schedule ADD COLUMN selector varchar(1024) NULL');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE schedule DROP COLUMN selector');
    await q.query('ALTER TABLE task DROP COLUMN selector');
    await q.query('ALTER TABLE endpoint DROP COLUMN facts');
    await q.query('ALTER TABLE endpoint DROP COLUMN labels');
  }
}
