import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { createDataSource, MIGRATIONS } from '../../api/storage/database';
import { DropStatusStartIndex1765000000000 } from '../../api/storage/migrations/1765000000000-drop-status-start-index';
import { Harness } from '../support/harness';

/**
 * Every index of `task` is written on every status change of every task, so it carries only those that a
 * query reads by: this pins the set, and checks that the migration dropping the unused one can be undone.
 */
describe('the indexes of the task table (MariaDB)', function () {
  const h = new Harness({ waitTimeout: 3, handlerTimeout: 3 });
  const database = `${h.id}_idx`;
  let admin: mysql.Connection;
  let ds: DataSource | null = null;

  before(async function () {
    await h.setup(this);
    admin = await mysql.createConnection({ uri: h.config.manager.db.admin_uri });
    await admin.query(`CREATE DATABASE \`${database}\``);
    ds = createDataSource({ ...h.config.manager.db, uri: `${h.config.manager.db.admin_uri}${database}` }, process.cwd());
    ds.setOptions({ migrations: MIGRATIONS });
    await ds.initialize();
    await ds.runMigrations();
  });

  after(async function () {
    await ds?.destroy();
    await admin?.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin?.end();
    await h.teardown();
  });

  const indexes = async (): Promise<string[]> => {
    const [rows] = await admin.query(`SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'task' ORDER BY INDEX_NAME`, [database]) as unknown as [{ name: string }[]];
    return rows.map((r) => r.name).sort();
  };

  const tables = async (name: string): Promise<string[]> => {
    const [rows] = await admin.query('SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [database, name]) as unknown as [{ name: string }[]];
    return rows.map((r) => r.name);
  };

  it('has no index by status and start time, and undoing the migration that dropped it brings it back', async function () {
    // idx_task_rows_pending: written when a task is stored and when its deferred rows are (ResponseRows), not on status changes.
    const expected = ['idx_task_deadline', 'idx_task_rows_pending', 'ix_task_start', 'ix_task_status_modified', 'ix_task_status_sent', 'ix_task_type', 'ix_task_type_status', 'PRIMARY', 'uq_task_type_identifier'].sort();
    assert.deepEqual(await indexes(), expected);
    // The migrations after it, then it.
    for (let i = MIGRATIONS.indexOf(DropStatusStartIndex1765000000000); i < MIGRATIONS.length; i++) await ds?.undoLastMigration();
    assert.deepEqual(await indexes(), [...expected.filter((i) => i !== 'idx_task_rows_pending'), 'ix_task_status_start'].sort());
    assert.deepEqual(await tables('task_output'), [], 'undone, the output table is gone');
    await ds?.runMigrations();
    assert.deepEqual(await indexes(), expected);
    assert.deepEqual(await tables('task_output'), ['task_output']);
  });
});
