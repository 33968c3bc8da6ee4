import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What operating a broadcast needs, and room to grow:
 * - a response row for every expected endpoint from the moment the task is created (state `pending`), with
 *   its `state` in the one vocabulary of the API and its `round` (how often it was retried), so that "who has
 *   not answered", "what failed on this server" and retries are indexed reads and writes;
 * - `task_event`, the history of every change of a task, in order (the endpoints a change concerns, and
 *   their results, in its JSON `detail`); without a foreign key, which would cost every one of its many
 *   inserts a lookup: only the task's writers, under its lock, add to it;
 * - `request_key`, the answers of requests sent with an Idempotency-Key;
 * - 64-bit ids everywhere (at 2,000 tasks/s with 3 endpoints, 32-bit response ids run out in days).
 * Existing rows get their state from their status; missing rows of existing tasks are added as pending.
 * MySQL rebuilds the tables: on a large database, let the first process to start migrate while the others
 * are stopped.
 */
const BIN = 'CHARACTER SET utf8mb4 COLLATE utf8mb4_bin';
const STATE_OF_ROW = `CASE WHEN status = 0 THEN 'running' WHEN errnr = 0 THEN 'succeeded' ELSE 'failed' END`;

export class Operations1764000000000 implements MigrationInterface {
  name = 'Operations1764000000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') await this.upMysql(q);
    else await this.upSqlite(q);
  }

  private async upMysql(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE task_response DROP FOREIGN KEY fk_response_task');
    await q.query(`ALTER TABLE task MODIFY id BIGINT NOT NULL AUTO_INCREMENT,
      ADD INDEX ix_task_type (type, id), ADD INDEX ix_task_type_status (type, status, id), ADD INDEX ix_task_start (start_time),
      ADD INDEX ix_task_status_modified (status, last_modified_time)`);
    await q.query(`ALTER TABLE task_response MODIFY id BIGINT NOT NULL AUTO_INCREMENT, MODIFY task_id BIGINT NOT NULL,
      ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'pending' AFTER endpoint, ADD COLUMN \`round\` INT NOT NULL DEFAULT 0 AFTER state,
      MODIFY status TINYINT NULL DEFAULT NULL, MODIFY attempts INT NOT NULL DEFAULT 0, MODIFY start_time DATETIME(3) NULL,
      ADD INDEX ix_response_endpoint_state (endpoint, state, task_id), ADD INDEX ix_response_endpoint (endpoint, task_id),
      ADD INDEX ix_response_state (state, task_id),
      ADD CONSTRAINT fk_response_task FOREIGN KEY (task_id) REFERENCES task (id) ON DELETE CASCADE`);
    await q.query(`UPDATE task_response SET state = ${STATE_OF_ROW}`);
    await q.query(`INSERT INTO task_response (task_id, endpoint, state, \`round\`, status, errnr, attempts, last_modified_time)
      SELECT t.id, j.name, 'pending', 0, NULL, 0, 0, t.last_modified_time
      FROM task t, JSON_TABLE(t.expected_endpoints, '$[*]' COLUMNS (name VARCHAR(64) ${BIN} PATH '$')) j
      WHERE NOT EXISTS (SELECT 1 FROM task_response r WHERE r.task_id = t.id AND r.endpoint = j.name)`);
    await q.query('ALTER TABLE endpoint MODIFY id BIGINT NOT NULL AUTO_INCREMENT, ADD INDEX ix_endpoint_name (name)');
    await q.query(`CREATE TABLE task_event (
      id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      task_id BIGINT NOT NULL,
      time DATETIME(3) NOT NULL,
      kind VARCHAR(16) NOT NULL,
      detail LONGTEXT NULL,
      actor VARCHAR(64) NULL,
      KEY ix_event_task (task_id, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    await q.query(`CREATE TABLE request_key (
      id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      scope VARCHAR(100) ${BIN} NOT NULL,
      idempotency_key VARCHAR(128) ${BIN} NOT NULL,
      response LONGTEXT NOT NULL,
      created_time DATETIME(3) NOT NULL,
      UNIQUE KEY uq_request_key (scope, idempotency_key),
      KEY ix_request_key_created (created_time)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
  }

  private async upSqlite(q: QueryRunner): Promise<void> {
    // SQLite's integers are 64-bit already; a column's constraints change only by rebuilding its table.
    await q.query(`CREATE TABLE task_response_new (
      id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
      task_id integer NOT NULL REFERENCES task (id) ON DELETE CASCADE,
      endpoint varchar(64) NOT NULL,
      state varchar(16) NOT NULL DEFAULT 'pending',
      round integer NOT NULL DEFAULT 0,
      status integer NULL,
      errnr integer NOT NULL DEFAULT 0,
      errmsg text NULL,
      payload text NULL,
      attempts integer NOT NULL DEFAULT 0,
      start_time datetime NULL,
      last_modified_time datetime NOT NULL)`);
    await q.query(`INSERT INTO task_response_new (id, task_id, endpoint, state, round, status, errnr, errmsg, payload, attempts, start_time, last_modified_time)
      SELECT id, task_id, endpoint, ${STATE_OF_ROW}, 0, status, errnr, errmsg, payload, attempts, start_time, last_modified_time FROM task_response`);
    await q.query('DROP TABLE task_response');
    await q.query('ALTER TABLE task_response_new RENAME TO task_response');
    await q.query('CREATE UNIQUE INDEX uq_response_task_endpoint ON task_response (task_id, endpoint)');
    await q.query('CREATE INDEX ix_response_endpoint_state ON task_response (endpoint, state, task_id)');
    await q.query('CREATE INDEX ix_response_endpoint ON task_response (endpoint, task_id)');
    await q.query('CREATE INDEX ix_response_state ON task_response (state, task_id)');
    await q.query(`INSERT INTO task_response (task_id, endpoint, state, round, status, errnr, attempts, last_modified_time)
      SELECT t.id, j.value, 'pending', 0, NULL, 0, 0, t.last_modified_time FROM task t, json_each(t.expected_endpoints) j
      WHERE NOT EXISTS (SELECT 1 FROM task_response r WHERE r.task_id = t.id AND r.endpoint = j.value)`);
    await q.query('CREATE INDEX ix_task_type ON task (type, id)');
    await q.query('CREATE INDEX ix_task_type_status ON task (type, status, id)');
    await q.query('CREATE INDEX ix_task_start ON task (start_time)');
    await q.query('CREATE INDEX ix_task_status_modified ON task (status, last_modified_time)');
    await q.query('CREATE INDEX ix_endpoint_name ON endpoint (name)');
    await q.query(`CREATE TABLE task_event (
      id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
      task_id integer NOT NULL,
      time datetime NOT NULL,
      kind varchar(16) NOT NULL,
      detail text NULL,
      actor varchar(64) NULL)`);
    await q.query('CREATE INDEX ix_event_task ON task_event (task_id, id)');
    await q.query(`CREATE TABLE request_key (
      id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
      scope varchar(100) NOT NULL,
      idempotency_key varchar(128) NOT NULL,
      response text NOT NULL,
      created_time datetime NOT NULL)`);
    await q.query('CREATE UNIQUE INDEX uq_request_key ON request_key (scope, idempotency_key)');
    await q.query('CREATE INDEX ix_request_key_created ON request_key (created_time)');
  }

  async down(q: QueryRunner): Promise<void> {
    // Back to one row per heard endpoint: rows never heard from go, as do the history and the stored answers.
    await q.query('DROP TABLE request_key');
    await q.query('DROP TABLE task_event');
    await q.query(`DELETE FROM task_response WHERE status IS NULL`);
    if (q.connection.driver.options.type !== 'mysql') {
      await q.query('DROP INDEX ix_response_endpoint_state');
      await q.query('DROP INDEX ix_response_endpoint');
      await q.query('DROP INDEX ix_response_state');
      await q.query('DROP INDEX ix_task_type');
      await q.query('DROP INDEX ix_task_type_status');
      await q.query('DROP INDEX ix_task_start');
      await q.query('DROP INDEX ix_task_status_modified');
      return;
    }
    await q.query(`ALTER TABLE task_response DROP INDEX ix_response_endpoint_state, DROP INDEX ix_response_endpoint,
      DROP INDEX ix_response_state, DROP COLUMN state, DROP COLUMN \`round\``);
    await q.query('ALTER TABLE task DROP INDEX ix_task_type, DROP INDEX ix_task_type_status, DROP INDEX ix_task_start, DROP INDEX ix_task_status_modified');
  }
}
