/**
 * The shapes of the HTTP API's answers as the CLI reads them. Declared here rather than imported from the
 * server side, so that the CLI depends on the API's JSON alone (GET /openapi.json describes it).
 */

export const TASK_STATUSES = ['CREATED', 'SENT', 'DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const ENDPOINT_STATES = ['pending', 'running', 'succeeded', 'failed', 'missing', 'cancelled', 'queued', 'skipped'] as const;
export type EndpointState = (typeof ENDPOINT_STATES)[number];

/** `queued` and `skipped` (a rollout's) are absent from APIs that predate rollouts. */
export type Counts = { expected: number; received: number; finished: number } & Record<Exclude<EndpointState, 'queued' | 'skipped'>, number>
  & Partial<Record<'queued' | 'skipped', number>>;

export interface Task {
  id: number;
  identifier: string;
  type: string;
  status: TaskStatus;
  payload: unknown;
  endpoints: string[];
  start_time: string;
  sent_time: string | null;
  end_time: string | null;
  responses: Counts;
  /** A rolling send (absent from APIs that predate rollouts). */
  rollout?: Rollout | null;
  /** Seconds the task may run from its send, and when that is up (absent from APIs that predate deadlines). */
  timeout?: number;
  deadline?: string | null;
}

export interface Rollout {
  batch_size: number;
  max_errors: number | null;
  sent: number;
  running: number;
  remaining: number;
  errors: number;
}

export interface TaskResponse {
  endpoint: string;
  state: EndpointState;
  failure?: string;
  round: number;
  status: 0 | 1 | null;
  errnr: number;
  errmsg: string | null;
  payload: unknown;
  attempts: number;
  start_time: string | null;
  last_modified_time: string;
}

export interface TaskWithResponses {
  task: Task;
  taskResponseList: TaskResponse[];
}

export interface TaskEvent {
  id: number;
  task_id: number;
  type: string;
  identifier: string;
  time: string;
  kind: string;
  actor: string | null;
  detail?: Record<string, unknown> | null;
}

export interface EndpointInfo {
  name: string;
  task_types: string[];
  first_seen: string;
  last_heartbeat: string;
  alive: boolean;
  /** Not heard from within the API's api.endpoint_stale_after. */
  stale?: boolean;
  labels?: Record<string, string>;
  facts?: Record<string, unknown>;
}

export interface TokenInfo {
  name: string;
  scopes: string[];
  created_time: string;
  last_used_time: string | null;
  revoked_time: string | null;
}

export const ENDED: readonly TaskStatus[] = ['DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED'];

export interface ScheduleInfo {
  name: string;
  task_type: string;
  cron: string | null;
  every: string | null;
  timezone: string;
  payload: unknown;
  endpoints: string[] | null;
  rollout: Record<string, unknown> | null;
  paused: boolean;
  next_fire_time: string | null;
  last_fire_time: string | null;
  last_task_identifier: string | null;
  last_error: string | null;
  created_by: string | null;
  created_time: string;
  updated_time: string;
}

export interface WebhookInfo {
  id: number;
  url: string;
  events: string[];
  types: string[] | null;
  selector: string | null;
  description: string | null;
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: string | null;
  previous_secret_until: string | null;
  created_time: string;
  secret?: string;
}

export interface DeliveryInfo {
  id: number;
  message_id: string;
  event: string;
  task: { id: number; type: string; identifier: string } | null;
  endpoint: string | null;
  event_time: string;
  status: string;
  attempt: number;
  http_status: number | null;
  duration_ms: number | null;
  last_attempt_time: string | null;
  next_time: string | null;
  last_error: string | null;
}
