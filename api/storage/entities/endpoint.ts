import { EntitySchema } from 'typeorm';

/** The endpoint registry: which endpoint managers serve which task type, and when they were last alive. */
export interface Endpoint {
  id: number;
  task_type: string;
  name: string;
  first_seen: Date;
  last_heartbeat: Date;
  waiting_since: Date | null;
}

export const EndpointEntity = new EntitySchema<Endpoint>({
  name: 'Endpoint',
  tableName: 'endpoint',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    task_type: { type: String, length: 32 },
    name: { type: String, length: 64 },
    first_seen: { type: 'datetime', precision: 3 },
    last_heartbeat: { type: 'datetime', precision: 3 },
    waiting_since: { type: 'datetime', precision: 3, nullable: true },
  },
});
