import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A stored Idempotency-Key keeps the sha256 of its request, so that the key reused with another body is
 * refused instead of replaying an answer to a request that was not made. Rows from before have none
 * (NULL) and replay as they did.
 */
export class RequestFingerprint1764910000000 implements MigrationInterface {
  name = 'RequestFingerprint1764910000000';

  async up(q: QueryRunner): Promise<void> {
    const type = q.connection.driver.options.type === 'mysql' ? 'CHAR(64)' : 'varchar(64)';
    await q.query(`ALTER TABLE request_key ADD COLUMN fingerprint ${type} NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE request_key DROP COLUMN fingerprint');
  }
}
