import { MigrationInterface, QueryRunner, Table } from 'typeorm';

/**
 * `known_endpoint`: the endpoint names added by `npm run endpoint -- add` before they ever registered.
 * With the registry's names they are the inventory a task's listed endpoints are checked against.
 */
export class KnownEndpoints1765100000000 implements MigrationInterface {
  name = 'KnownEndpoints1765100000000';

  async up(q: QueryRunner): Promise<void> {
    const mysql = q.connection.driver.options.type === 'mysql';
    await q.createTable(new Table({
      name: 'known_endpoint',
      columns: [
        { name: 'name', type: 'varchar', length: '64', isPrimary: true },
        { name: 'added_time', type: 'datetime', precision: mysql ? 3 : undefined },
      ],
    }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('known_endpoint');
  }
}
