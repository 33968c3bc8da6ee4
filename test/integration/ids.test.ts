import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { createDataSource, MIGRATIONS } from '../../api/storage/database';
import { BigintIds1764400000000, ID_COLUMNS } from '../../api/storage/migrations/1764400000000-bigint-ids';
import { Topology } from '../../protocol/topology';
import { Harness } from '../support/harness';

const TOPOLOGY = new Topology('tasker', 'classic');
const TWO_32 = 2 ** 32;

describe('64-bit ids (RabbitMQ + MariaDB, real processes)', function () {
  const h = new Harness({ waitTimeout: 3, handlerTimeout: 3 });
  let sql: mysql.Pool;

  before(async function () {
    await h.setup(this);
    sql = mysql.createPool({ uri: h.config.manager.db.uri, connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: true });
  });

  after(async function () {
    await sql?.end();
    await h.teardown();
  });

  describe('the migration to BIGINT, on tables that hold rows', function () {
    const database = `${h.id}_mig`;
    let admin: mysql.Connection;
    let ds: DataSource | null = null;

    before(async function () {
      admin = await mysql.createConnection({ uri: h.config.manager.db.admin_uri });
      await admin.query(`CREATE DATABASE \`${database}\``);
    });

    after(async function () {
      await ds?.destroy();
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await admin.end();
    });

    const open = (migrations: typeof MIGRATIONS): DataSource => {
      const made = createDataSource({ ...h.config.manager.db, uri: `${h.config.manager.db.admin_uri}${database}` }, process.cwd());
      made.setOptions({ migrations });
      return made;
    };
    const types = async (): Promise<Map<string, string>> => {
      const [rows] = await admin.query(`SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS type FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = ?`, [database]) as unknown as [{ t: string; c: string; type: string }[]];
      return new Map(rows.map((r) => [`${r.t}.${r.c}`, r.type]));
    };

    it('converts every id column still 32-bit, keeps the rows and the foreign key, and leaves BIGINT ones alone', async function () {
      // Every migration before the one to BIGINT (later ones may follow it in the list).
      ds = open(MIGRATIONS.slice(0, MIGRATIONS.indexOf(BigintIds1764400000000)));
      await ds.initialize();
      await ds.runMigrations();
      // A database whose id columns are 32-bit (altered by hand, or restored from elsewhere), with rows in them.
      await admin.query(`USE \`${database}\``);
      const q = (text: string): Promise<unknown> => admin.query(text);
      await q('ALTER TABLE task_response DROP FOREIGN KEY fk_response_task');
      await q('ALTER TABLE task MODIFY id INT NOT NULL AUTO_INCREMENT');
      await q('ALTER TABLE task_response MODIFY id INT NOT NULL AUTO_INCREMENT, MODIFY task_id INT NOT NULL');
      await q('ALTER TABLE task_response ADD CONSTRAINT fk_response_task FOREIGN KEY (task_id) REFERENCES task (id) ON DELETE CASCADE');
      await q('ALTER TABLE task_event MODIFY id INT NOT NULL AUTO_INCREMENT, MODIFY task_id INT NOT NULL');
      await q('ALTER TABLE endpoint MODIFY id INT NOT NULL AUTO_INCREMENT');
      await q(`INSERT INTO task (id, identifier, type, status, expected_endpoints, expected_count, request_hash, start_time, last_modified_time)
        VALUES (2147483000, 'old-1', 'worker', 'DONE', '["console1"]', 1, 'h', NOW(3), NOW(3))`);
      await q(`INSERT INTO task_response (id, task_id, endpoint, state, status, errnr, payload, last_modified_time)
        VALUES (2147483600, 2147483000, 'console1', 'succeeded', 1, 0, '{"a":1}', NOW(3))`);
      await q(`INSERT INTO task_event (task_id, time, kind) VALUES (2147483000, NOW(3), 'done')`);
      await q(`INSERT INTO endpoint (task_type, name, first_seen, last_heartbeat) VALUES ('worker', 'console1', NOW(3), NOW(3))`);
      const before = await types();
      assert.equal(before.get('task.id'), 'int(11)');
      assert.equal(before.get('request_key.id'), 'bigint(20)');
      await ds.destroy();

      ds = open(MIGRATIONS);
      await ds.initialize();
      await ds.runMigrations();
      const after = await types();
      for (const [table, column] of ID_COLUMNS) assert.equal(after.get(`${table}.${column}`), 'bigint(20)', `${table}.${column}`);
      const [fks] = await admin.query(`SELECT CONSTRAINT_NAME AS name, DELETE_RULE AS onDelete FROM information_schema.REFERENTIAL_CONSTRAINTS
        WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = 'task_response'`, [database]);
      assert.deepEqual(fks, [{ name: 'fk_response_task', onDelete: 'CASCADE' }]);
      const [extra] = await admin.query(`SELECT EXTRA AS extra FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_NAME = 'id'
        AND TABLE_NAME IN ('task', 'task_response', 'task_event', 'endpoint')`, [database]) as unknown as [{ extra: string }[]];
      assert.deepEqual(extra.map((r) => r.extra), ['auto_increment', 'auto_increment', 'auto_increment', 'auto_increment']);
      const [rows] = await admin.query(`SELECT t.id, t.identifier, r.id AS rid, r.payload, (SELECT COUNT(*) FROM task_event e WHERE e.task_id = t.id) AS events
        FROM task t JOIN task_response r ON r.task_id = t.id`);
      assert.deepEqual(rows, [{ id: 2147483000, identifier: 'old-1', rid: 2147483600, payload: '{"a":1}', events: 1 }]);
      // Past 2^32 now: an id the INT column could not have held.
      await q(`INSERT INTO task (identifier, type, status, expected_endpoints, expected_count, request_hash, start_time, last_modified_time, id)
        VALUES ('big', 'worker', 'DONE', '[]', 0, 'h', NOW(3), NOW(3), ${TWO_32 + 1})`);
    });
  });

  it('creates, sends, completes and answers tasks whose ids and response ids are past 2^32', async function () {
    await sql.query(`ALTER TABLE task AUTO_INCREMENT = ${TWO_32 + 10}`);
    await sql.query(`ALTER TABLE task_response AUTO_INCREMENT = ${2 * TWO_32 + 10}`);
    await sql.query(`ALTER TABLE task_event AUTO_INCREMENT = ${3 * TWO_32 + 10}`);
    await h.startApi();
    await h.startManager('console1');
    // console2 does not run: its queue keeps the task message as it travelled, to be read here.
    const tap = TOPOLOGY.endpointQueueName('worker', 'console2');
    try {
      const created = await h.post('worker', { identifier: 'big-ids', payload: { sleep: 0.05 }, endpoints: ['console1', 'console2'] });
      assert.equal(created.status, 201);
      const id = created.json.id as number;
      assert.ok(id > TWO_32 && id < TWO_32 + 1000, `task id ${id}`);

      // On the wire: the message id and the body's id are the task's id, exactly.
      const msg = await h.withChannel(async (ch) => {
        for (let i = 0; i < 100; i++) {
          const got = await ch.get(tap, { noAck: true });
          if (got) return got;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        throw new Error('the task message did not reach console2\'s queue');
      });
      assert.equal(msg.properties.messageId, String(id));
      assert.equal(JSON.parse(msg.content.toString()).id, id);

      // console1's result came back with that task_id and was matched to the task.
      const done = await h.waitForStatus('worker', 'big-ids', ['INCOMPLETE']);
      assert.equal(done.task.id, id);
      const response = (done.taskResponseList as { id: number; task_id: number; state: string; endpoint: string }[]).find((r) => r.endpoint === 'console1');
      assert.ok(response);
      assert.equal(response.task_id, id);
      assert.equal(response.state, 'succeeded');
      assert.ok(response.id > 2 * TWO_32, `response id ${response.id}`);
      const [stored] = await sql.query('SELECT id FROM task_response WHERE task_id = ?', [String(id)]) as unknown as [{ id: string }[]];
      assert.equal(stored[0].id, String(response.id));

      const events = await h.get(`worker/big-ids/events`);
      assert.equal(events.status, 200);
      const ids = events.json.events as { id: number }[];
      assert.ok(ids.length >= 2 && ids.every((e) => e.id > 3 * TWO_32), JSON.stringify(ids));
    } finally {
      await h.withChannel((ch) => ch.deleteQueue(tap)).catch(() => undefined);
    }
  });

  it('refuses a task whose id would be past 2^53 - 1, storing nothing, rather than answer a rounded id', async function () {
    await sql.query(`ALTER TABLE task AUTO_INCREMENT = ${2 ** 53}`);
    const refused = await h.post('worker', { identifier: 'beyond', payload: {}, endpoints: ['console1'] });
    assert.equal(refused.status, 500);
    const [rows] = await sql.query(`SELECT COUNT(*) AS n FROM task WHERE identifier = 'beyond'`) as unknown as [{ n: string }[]];
    assert.equal(Number(rows[0].n), 0);
  });
});
