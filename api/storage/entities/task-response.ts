import { EntitySchema } from 'typeorm';

import { ENDPOINT_STATE, EndpointState } from '../../lifecycle/states';

export { ENDPOINT_STATES as RESPONSE_STATES, SHOWN_STATES } from '../../lifecycle/states';
export type { EndpointState as ResponseState, ShownState } from '../../lifecycle/states';
type ResponseState = EndpointState;

export interface TaskResponse {
  id: number;
  task_id: number;
  endpoint: string;
  state: ResponseState;
  /** 0 for the first send; one more for each retry of this endpoint. */
  round: number;
  status: number | null;
  errnr: number;
  errmsg: string | null;
  payload: unknown;
  /** How many times a handler was started for this round; bounds redelivery after crashes. */
  attempts: number;
  start_time: Date | null;
  last_modified_time: Date;
  /** A rollout's rows only: when the broker confirmed the send to this endpoint (null: not yet). */
  sent_time?: Date | null;
}

export const TaskResponseEntity = new EntitySchema<TaskResponse>({
  name: 'TaskResponse',
  tableName: 'task_response',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    task_id: { type: 'bigint' },
    endpoint: { type: String, length: 64 },
    state: { type: String, length: 16, default: ENDPOINT_STATE.PENDING },
    round: { type: Number, default: 0 },
    status: { type: Number, nullable: true },
    errnr: { type: Number, default: 0 },
    errmsg: { type: 'text', nullable: true },
    payload: { type: 'simple-json', nullable: true },
    attempts: { type: Number, default: 0 },
    start_time: { type: 'datetime', precision: 3, nullable: true },
    sent_time: { type: 'datetime', precision: 3, nullable: true },
    last_modified_time: { type: 'datetime', precision: 3 },
  },
});
