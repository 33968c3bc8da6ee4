import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `endpoint_stale_notice`: per endpoint name, the last heartbeat whose silence was announced as an
 * `endpoint.stale` webhook event. A silence is announced once: when the endpoint's newest heartbeat is past
 * api.endpoint_stale_after and newer than the one recorded here. The endpoints known at the upgrade are
 * recorded as announced, so that silences older than the feature are not sent.
 */
export class EndpointStaleNotice1765500000000 implements MigrationInterface {
  name = 'EndpointStaleNotice1765500000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query(`CREATE TABLE endpoint_stale_notice (
        name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
        heartbeat DATETIME(3) NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    } else {
      await q.query('CREATE TABLE endpoint_stale_notice (name varchar(64) PRIMARY KEY NOT NULL, heartbeat datetime NULL)');
    }
    await q.query('INSERT INTO endpoint_stale_notice (name, heartbeat) SELECT name, MAX(last_heartbeat) FROM endpoint GROUP BY name');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE endpoint_stale_notice');
  }
}
