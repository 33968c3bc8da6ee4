import { EntitySchema } from 'typeorm';

export const TASK_STATUSES = ['CREATED', 'SENT', 'DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
/**
 * A task in one of these has ended; a late response may still turn INCOMPLETE into DONE. STOPPED: a
 * rollout whose error budget ran out, once the endpoints it had sent the task to were done.
 */
export const ENDED_STATUSES: readonly TaskStatus[] = ['DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED'];

/** A size or a share of the expected endpoints, as the client asked for it: 3 or "10%". */
export type RolloutAmount = number | string;

/**
 * A rolling send: at most `batch_size` endpoints sent the task and not finished at once; no more sends
 * once more than `max_errors` failed or went missing (null: no limit). Both resolved against the expected
 * endpoints when the task was created; `request` is what the client asked for.
 */
export interface Rollout {
  batch_size: number;
  max_errors: number | null;
  request: { batch_size: RolloutAmount; max_errors?: RolloutAmount };
  /** The errors left standing by the last retry: the budget counts only the errors beyond them. */
  errors_before?: number;
}

export interface Task {
  id: number;
  identifier: string;
  type: string;
  status: TaskStatus;
  payload: unknown;
  /** The endpoints the client listed; null when it listed none (a broadcast). */
  endpoints: string[] | null;
  /** Who must perform the task: the listed endpoints, or those registered for the type at creation. */
  expected_endpoints: string[];
  expected_count: number;
  received_count: number;
  finished_count: number;
  failed_count: number;
  /** sha256 of the request's payload and endpoints, to tell an idempotent retry from a conflict. */
  request_hash: string;
  start_time: Date;
  sent_time: Date | null;
  end_time: Date | null;
  last_modified_time: Date;
  rollout: Rollout | null;
  /** Seconds the task may run from its send (its POST's `timeout`, or `api.execution_timeout`). */
  timeout: number;
  /** When the run's time is up, on the database's clock: the send (or creation, until sent) plus `timeout`. */
  deadline: Date | null;
}

export const TaskEntity = new EntitySchema<Task>({
  name: 'Task',
  tableName: 'task',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    identifier: { type: String, length: 64 },
    type: { type: String, length: 32 },
    status: { type: String, length: 16 },
    payload: { type: 'simple-json', nullable: true },
    endpoints: { type: 'simple-json', nullable: true },
    expected_endpoints: { type: 'simple-json' },
    expected_count: { type: Number },
    received_count: { type: Number, default: 0 },
    finished_count: { type: Number, default: 0 },
    failed_count: { type: Number, default: 0 },
    request_hash: { type: String, length: 64 },
    start_time: { type: 'datetime', precision: 3 },
    sent_time: { type: 'datetime', precision: 3, nullable: true },
    end_time: { type: 'datetime', precision: 3, nullable: true },
    last_modified_time: { type: 'datetime', precision: 3 },
    rollout: { type: 'simple-json', nullable: true },
    timeout: { type: Number, default: 3600 },
    deadline: { type: 'datetime', precision: 3, nullable: true },
  },
});
