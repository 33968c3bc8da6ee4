import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Webhooks: the subscriptions (`webhook`) and their outbox (`webhook_delivery`), one row per event and
 * subscription, written in the transaction of the change it reports. The delivery job claims rows by
 * `(status, next_time)`; per-task order is checked through `(webhook_id, task_id, id)`; the delivery log
 * of a subscription reads `(webhook_id, id)`; a delivery that ended gets an `expire_time`, by which the
 * log is pruned. `retry_from` starts the window of api.webhooks.retry_for: the event's time, or a redelivery's. `events` and `types` are comma-delimited lists with a comma
 * at each end, so that the outbox's INSERT … SELECT matches them with INSTR on either database.
 */
export class Webhooks1765300000000 implements MigrationInterface {
  name = 'Webhooks1765300000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query(`CREATE TABLE webhook (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        url VARCHAR(2048) NOT NULL,
        events VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        types TEXT CHARACTER SET ascii COLLATE ascii_bin NULL,
        description VARCHAR(255) NULL,
        secret VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        enabled TINYINT NOT NULL DEFAULT 1,
        disabled_reason VARCHAR(255) NULL,
        failing_since DATETIME(3) NULL,
        created_by VARCHAR(64) NULL,
        created_time DATETIME(3) NOT NULL,
        updated_time DATETIME(3) NOT NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
      await q.query(`CREATE TABLE webhook_delivery (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        webhook_id BIGINT NOT NULL,
        task_id BIGINT NOT NULL,
        event_id BIGINT NOT NULL,
        event VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        task_type VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        identifier VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        event_time DATETIME(3) NOT NULL,
        retry_from DATETIME(3) NOT NULL,
        status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        attempt INT NOT NULL DEFAULT 0,
        next_time DATETIME(3) NULL,
        body LONGTEXT NULL,
        http_status INT NULL,
        duration_ms INT NULL,
        last_error TEXT NULL,
        last_attempt_time DATETIME(3) NULL,
        expire_time DATETIME(3) NULL,
        KEY idx_webhook_delivery_due (status, next_time),
        KEY idx_webhook_delivery_task (webhook_id, task_id, id),
        KEY idx_webhook_delivery_expire (expire_time)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    } else {
      await q.query(`CREATE TABLE webhook (
        id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        url varchar(2048) NOT NULL,
        events varchar(255) NOT NULL,
        types text NULL,
        description varchar(255) NULL,
        secret varchar(64) NOT NULL,
        enabled integer NOT NULL DEFAULT 1,
        disabled_reason varchar(255) NULL,
        failing_since datetime NULL,
        created_by varchar(64) NULL,
        created_time datetime NOT NULL,
        updated_time datetime NOT NULL)`);
      await q.query(`CREATE TABLE webhook_delivery (
        id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        webhook_id integer NOT NULL,
        task_id integer NOT NULL,
        event_id integer NOT NULL,
        event varchar(32) NOT NULL,
        task_type varchar(32) NOT NULL,
        identifier varchar(64) NOT NULL,
        event_time datetime NOT NULL,
        retry_from datetime NOT NULL,
        status varchar(16) NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        next_time datetime NULL,
        body text NULL,
        http_status integer NULL,
        duration_ms integer NULL,
        last_error text NULL,
        last_attempt_time datetime NULL,
        expire_time datetime NULL)`);
      await q.query('CREATE INDEX idx_webhook_delivery_due ON webhook_delivery (status, next_time)');
      await q.query('CREATE INDEX idx_webhook_delivery_task ON webhook_delivery (webhook_id, task_id, id)');
      await q.query('CREATE INDEX idx_webhook_delivery_expire ON webhook_delivery (expire_time)');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE webhook_delivery');
    await q.query('DROP TABLE webhook');
  }
}
