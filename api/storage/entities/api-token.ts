import { EntitySchema } from 'typeorm';

/**
 * A bearer token of the API. Only a SHA-256 of its secret is stored: the token itself is shown once, when
 * it is created. `key` is the token's public part, by which a presented token is found.
 */
export interface ApiToken {
  id: number;
  name: string;
  key: string;
  secret_hash: string;
  scopes: string[];
  created_time: Date;
  last_used_time: Date | null;
  revoked_time: Date | null;
}

export const ApiTokenEntity = new EntitySchema<ApiToken>({
  name: 'ApiToken',
  tableName: 'api_token',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    name: { type: String, length: 64 },
    key: { type: String, length: 32 },
    secret_hash: { type: String, length: 64 },
    scopes: { type: 'simple-json' },
    created_time: { type: 'datetime', precision: 3 },
    last_used_time: { type: 'datetime', precision: 3, nullable: true },
    revoked_time: { type: 'datetime', precision: 3, nullable: true },
  },
  uniques: [{ name: 'uq_api_token_name', columns: ['name'] }, { name: 'uq_api_token_key', columns: ['key'] }],
});
