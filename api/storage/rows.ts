import type { Facts, Labels } from '../../protocol/labels';
import type { EndpointState, TaskStatus } from '../lifecycle/states';

/**
 * The rows of the database as the server side reads them, one interface per table (or join), in one
 * place. The schema itself is the migrations'; these are what the hand-written queries hydrate.
 */

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
  /** The label selector it was addressed with; `expected_endpoints` is what it resolved to at creation. */
  selector: string | null;
  /** Its own webhook URL: its end is POSTed there (null: none). */
  notify: string | null;
  /** Stored without its response rows so far (see ResponseRows): they are written before its first send. */
  rows_pending: boolean;
}

export interface TaskResponse {
  id: number;
  task_id: number;
  endpoint: string;
  state: EndpointState;
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

/** A response with the task it belongs to, for lists across tasks. */
export interface EndpointResponse extends TaskResponse {
  type: string;
  identifier: string;
  task_status: TaskStatus;
}

/** A recorded change, as the API shows it. */
export interface StoredEvent {
  id: number;
  task_id: number;
  type: string;
  identifier: string;
  time: string;
  kind: string;
  detail: Record<string, unknown> | null;
  actor: string | null;
}

/** An endpoint manager of the registry: the task types it serves, when it was first and last heard from. */
export interface RegisteredEndpoint {
  name: string;
  task_types: string[];
  first_seen: Date;
  last_heartbeat: Date;
  /** Since when its deliveries wait for a server side that does not answer, as its latest heartbeat said. */
  waiting_since: Date | null;
  /** As its latest register or heartbeat said; empty when it sent none. */
  labels: Labels;
  facts: Facts;
}

/** A schedule: a task created on a cron or every so often. */
export interface Schedule {
  id: number;
  name: string;
  task_type: string;
  cron: string | null;
  every: string | null;
  timezone: string;
  payload: unknown;
  endpoints: string[] | null;
  /** A label selector each firing's task is addressed with, resolved at the firing; null: none. */
  selector: string | null;
  rollout: Record<string, unknown> | null;
  paused: boolean;
  /** Where `every` counts from. */
  anchor_time: Date;
  /** Null while paused, or when a cron matches no later time. */
  next_fire_time: Date | null;
  last_fire_time: Date | null;
  last_task_identifier: string | null;
  last_error: string | null;
  created_by: string | null;
  created_time: Date;
  updated_time: Date;
}

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
