import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The endpoint registry keeps `waiting_since` from the heartbeats: since when an endpoint's deliveries
 * wait because no server side answered its requests (NULL: not waiting).
 */
export class EndpointWaiting1764800000000 implements MigrationInterface {
  name = 'EndpointWaiting1764800000000';

  async up(q: QueryRunner): Promise<void> {
    const type = q.connection.driver.options.type === 'mysql' ? 'DATETIME(3)' : 'datetime';
    await q.query(`ALTER TABLE endpoint ADD COLUMN waiting_since ${type} NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE endpoint DROP COLUMN waiting_since');
  }
}
