import { EntitySchema } from 'typeorm';

/** The answer to a request sent with an Idempotency-Key, so that its repeats change nothing. */
export interface RequestKey {
  id: number;
  scope: string;
  idempotency_key: string;
  response: unknown;
  created_time: Date;
}

export const RequestKeyEntity = new EntitySchema<RequestKey>({
  name: 'RequestKey',
  tableName: 'request_key',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    scope: { type: String, length: 100 },
    idempotency_key: { type: String, length: 128 },
    response: { type: 'simple-json' },
    created_time: { type: 'datetime', precision: 3 },
  },
});
