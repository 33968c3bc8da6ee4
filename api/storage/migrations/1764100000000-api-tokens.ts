import { MigrationInterface, QueryRunner } from 'typeorm';

/** Bearer tokens of the API (`api.auth: tokens`): a name, its scopes, and a hash of its secret. */
export class ApiTokens1764100000000 implements MigrationInterface {
  name = 'ApiTokens1764100000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === 'mysql') {
      await q.query(`CREATE TABLE api_token (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        \`key\` VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        secret_hash VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        scopes TEXT NOT NULL,
        created_time DATETIME(3) NOT NULL,
        last_used_time DATETIME(3) NULL,
        revoked_time DATETIME(3) NULL,
        UNIQUE KEY uq_api_token_name (name),
        UNIQUE KEY uq_api_token_key (\`key\`)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    } else {
      await q.query(`CREATE TABLE api_token (
        id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        name varchar(64) NOT NULL CONSTRAINT uq_api_token_name UNIQUE,
        key varchar(32) NOT NULL CONSTRAINT uq_api_token_key UNIQUE,
        secret_hash varchar(64) NOT NULL,
        scopes text NOT NULL,
        created_time datetime NOT NULL,
        last_used_time datetime NULL,
        revoked_time datetime NULL)`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE api_token');
  }
}
