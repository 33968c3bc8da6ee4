import { EntitySchema } from 'typeorm';

/**
 * An expected endpoint's part of a task, from the task's creation on. `state` is the one vocabulary of
 * the API: `pending` (sent, nothing heard; shown as `missing` once the task is INCOMPLETE),
 * `running` (receipt), `succeeded` / `failed` (finished), `cancelled` (the task was cancelled before the
 * endpoint was heard from). A rollout adds `queued` (not sent yet: waiting for a slot), `skipped` (never
 * sent: the rollout stopped, or was cancelled, before its turn) and a stored `missing` (sent, and not heard
 * from within `wait_for_endpoints_timeout` of its send). `status` keeps the original's values: null (not
 * heard), 0 received, 1 finished.
 */
export const RESPONSE_STATES = ['queued', 'pending', 'running', 'succeeded', 'failed', 'missing', 'skipped', 'cancelled'] as const;
export type ResponseState = (typeof RESPONSE_STATES)[number];
/** `missing` is also shown for a pending endpoint of an INCOMPLETE task. */
export type ShownState = ResponseState;
export const SHOWN_STATES: readonly ShownState[] = ['queued', 'pending', 'running', 'succeeded', 'failed', 'missing', 'skipped', 'cancelled'];

export const RESPONSE_RECEIVED = 0;
export const RESPONSE_FINISHED = 1;

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
    state: { type: String, length: 16, default: 'pending' },
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
