import { EntitySchema } from 'typeorm';
import type { ApiToken } from '../rows';

export type { ApiToken } from '../rows';

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
