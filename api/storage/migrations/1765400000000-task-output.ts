import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `task_output`: the live output lines of each run, one row a line, keyed by the run (task, endpoint,
 * round, attempt) and the line's number in it, so that an output event that comes twice stores nothing
 * twice and a run's lines are read in order off the key. Without a foreign key, like `task_event`: the
 * retention job removes a task's lines with it.
 */
const BIN = 'CHARACTER SET utf8mb4 COLLATE utf8mb4_bin';

export class TaskOutput1765400000000 implements MigrationInterface {
  name = 'TaskOutput1765400000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query(`CREATE TABLE task_output (
        task_id BIGINT NOT NULL,
        endpoint VARCHAR(64) ${BIN} NOT NULL,
        \`round\` INT NOT NULL,
        attempt INT NOT NULL,
        seq INT NOT NULL,
        stream VARCHAR(8) NOT NULL,
        text TEXT NOT NULL,
        time DATETIME(3) NOT NULL,
        PRIMARY KEY (task_id, endpoint, \`round\`, attempt, seq)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    } else {
      await q.query(`CREATE TABLE task_output (
        task_id integer NOT NULL,
        endpoint varchar(64) NOT NULL,
        "round" integer NOT NULL,
        attempt integer NOT NULL,
        seq integer NOT NULL,
        stream varchar(8) NOT NULL,
        text text NOT NULL,
        time datetime NOT NULL,
        PRIMARY KEY (task_id, endpoint, "round", attempt, seq))`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE task_output');
  }
}
