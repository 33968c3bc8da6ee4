import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Secret rotation: `previous_secret` is the secret a rotation replaced, which still signs deliveries
 * (beside the new one) until `previous_secret_until`, so that receivers switch without losing any.
 */
export class WebhookSecretRotation1765450000000 implements MigrationInterface {
  name = 'WebhookSecretRotation1765450000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query('ALTER TABLE webhook ADD COLUMN previous_secret VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL, ADD COLUMN previous_secret_until DATETIME(3) NULL');
    } else {
      await q.query('ALTER TABLE webhook ADD COLUMN previous_secret varchar(64) NULL');
      await q.query('ALTER TABLE webhook ADD COLUMN previous_secret_until datetime NULL');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE webhook DROP COLUMN previous_secret_until');
    await q.query('ALTER TABLE webhook DROP COLUMN previous_secret');
  }
}
