import { EntitySchema } from 'typeorm';

/** Response status as in the original: 0 = received (running), 1 = finished. */
export const RESPONSE_RECEIVED = 0;
export const RESPONSE_FINISHED = 1;

export interface TaskResponse {
  id: number;
  task_id: number;
  endpoint: string;
  status: number;
  errnr: number;
  errmsg: string | null;
  payload: unknown;
  /** How many times a handler was started for this response; bounds redelivery after crashes. */
  attempts: number;
  start_time: Date;
  last_modified_time: Date;
}

export const TaskResponseEntity = new EntitySchema<TaskResponse>({
  name: 'TaskResponse',
  tableName: 'task_response',
  columns: {
    id: { type: Number, primary: true, generated: 'increment' },
    task_id: { type: Number },
    endpoint: { type: String, length: 64 },
    status: { type: Number, default: RESPONSE_RECEIVED },
    errnr: { type: Number, default: 0 },
    errmsg: { type: 'text', nullable: true },
    payload: { type: 'simple-json', nullable: true },
    attempts: { type: Number, default: 1 },
    start_time: { type: 'datetime', precision: 3 },
    last_modified_time: { type: 'datetime', precision: 3 },
  },
});
