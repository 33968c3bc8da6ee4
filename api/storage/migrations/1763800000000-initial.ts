import { MigrationInterface, QueryRunner, Table, TableColumnOptions } from 'typeorm';

/** task, task_response and endpoint, written with TypeORM's schema API so MySQL and SQLite share it. */
export class Initial1763800000000 implements MigrationInterface {
  name = 'Initial1763800000000';

  async up(q: QueryRunner): Promise<void> {
    const mysql = q.connection.driver.options.type === 'mysql';
    const id: TableColumnOptions = {
      name: 'id', type: mysql ? 'int' : 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment',
    };
    const json = mysql ? 'longtext' : 'text';
    const time = (name: string, nullable = false): TableColumnOptions =>
      ({ name, type: 'datetime', precision: mysql ? 3 : undefined, isNullable: nullable });
    const count = (name: string): TableColumnOptions => ({ name, type: 'int', default: 0 });

    await q.createTable(new Table({
      name: 'task',
      columns: [
        id,
        { name: 'identifier', type: 'varchar', length: '64' },
        { name: 'type', type: 'varchar', length: '32' },
        { name: 'status', type: 'varchar', length: '16' },
        { name: 'payload', type: json, isNullable: true },
        { name: 'endpoints', type: json, isNullable: true },
        { name: 'expected_endpoints', type: json },
        { name: 'expected_count', type: 'int' },
        count('received_count'),
        count('finished_count'),
        count('failed_count'),
        { name: 'request_hash', type: 'varchar', length: '64' },
        time('start_time'),
        time('sent_time', true),
        time('end_time', true),
        time('last_modified_time'),
      ],
      uniques: [{ name: 'uq_task_type_identifier', columnNames: ['type', 'identifier'] }],
      indices: [
        { name: 'ix_task_status_sent', columnNames: ['status', 'sent_time'] },
        { name: 'ix_task_status_start', columnNames: ['status', 'start_time'] },
      ],
    }));

    await q.createTable(new Table({
      name: 'task_response',
      columns: [
        id,
        { name: 'task_id', type: 'int' },
        { name: 'endpoint', type: 'varchar', length: '64' },
        { name: 'status', type: mysql ? 'tinyint' : 'integer', default: 0 },
        { name: 'errnr', type: 'int', default: 0 },
        { name: 'errmsg', type: 'text', isNullable: true },
        { name: 'payload', type: json, isNullable: true },
        { name: 'attempts', type: 'int', default: 1 },
        time('start_time'),
        time('last_modified_time'),
      ],
      uniques: [{ name: 'uq_response_task_endpoint', columnNames: ['task_id', 'endpoint'] }],
      foreignKeys: [{
        name: 'fk_response_task', columnNames: ['task_id'], referencedTableName: 'task',
        referencedColumnNames: ['id'], onDelete: 'CASCADE',
      }],
    }));

    await q.createTable(new Table({
      name: 'endpoint',
      columns: [
        id,
        { name: 'task_type', type: 'varchar', length: '32' },
        { name: 'name', type: 'varchar', length: '64' },
        time('first_seen'),
        time('last_heartbeat'),
      ],
      uniques: [{ name: 'uq_endpoint_type_name', columnNames: ['task_type', 'name'] }],
    }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('endpoint');
    await q.dropTable('task_response');
    await q.dropTable('task');
  }
}
