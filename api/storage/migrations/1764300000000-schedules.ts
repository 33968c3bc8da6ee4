import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Schedules: tasks created at cron times or fixed intervals. `next_fire_time` is the only thing the
 * firing job reads (NULL while paused, or when a cron matches no later time), hence its index.
 */
export class Schedules1764300000000 implements MigrationInterface {
  name = 'Schedules1764300000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query(`CREATE TABLE schedule (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        task_type VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        cron VARCHAR(255) NULL,
        every VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
        timezone VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        payload LONGTEXT NULL,
        endpoints LONGTEXT NULL,
        rollout TEXT NULL,
        paused TINYINT NOT NULL DEFAULT 0,
        anchor_time DATETIME(3) NOT NULL,
        next_fire_time DATETIME(3) NULL,
        last_fire_time DATETIME(3) NULL,
        last_task_identifier VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
        last_error TEXT NULL,
        created_by VARCHAR(64) NULL,
        created_time DATETIME(3) NOT NULL,
        updated_time DATETIME(3) NOT NULL,
        UNIQUE KEY uq_schedule_name (name),
        KEY idx_schedule_next_fire (next_fire_time)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    } else {
      await q.query(`CREATE TABLE schedule (
        id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        name varchar(64) NOT NULL CONSTRAINT uq_schedule_name UNIQUE,
        task_type varchar(32) NOT NULL,
        cron varchar(255) NULL,
        every varchar(32) NULL,
        timezone varchar(64) NOT NULL,
        payload text NULL,
        endpoints text NULL,
        rollout text NULL,
        paused integer NOT NULL DEFAULT 0,
        anchor_time datetime NOT NULL,
        next_fire_time datetime NULL,
        last_fire_time datetime NULL,
        last_task_identifier varchar(64) NULL,
        last_error text NULL,
        created_by varchar(64) NULL,
        created_time datetime NOT NULL,
        updated_time datetime NOT NULL)`);
      await q.query('CREATE INDEX idx_schedule_next_fire ON schedule (next_fire_time)');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE schedule');
  }
}
