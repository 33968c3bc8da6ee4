import { Static, TSchema, Type } from '@sinclair/typebox';
import { ERROR_KEYWORD } from '../lib/validation';
import { SCOPE_PATTERN } from './auth';
import { ENDPOINT_PATTERN, TASK_TYPE_PATTERN } from '../protocol/names';
import { DELIVERY_STATUSES, ENDPOINT_STATE, EVENT_KINDS, SHOWN_STATES, TASK_STATUSES, WEBHOOK_EVENTS } from './lifecycle/states';
import { PERCENT_PATTERN } from './rollout';

/**
 * The HTTP API's requests and answers, declared once: the routes validate against them, the handlers
 * are typed by them, and GET /openapi.json is built from them.
 */

/** The client's key for a task: 1–64 of A-Za-z0-9._:- */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
export const MAX_ENDPOINTS = 1000;
/** A token's name: 1–64 of A-Za-z0-9._- */
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const IDENTIFIER_WORDS = '1-64 characters of A-Z a-z 0-9 . _ : -';

const enumOf = <const T extends string>(values: readonly T[], description?: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });
const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const Identifier = Type.String({ pattern: IDENTIFIER_PATTERN.source, [ERROR_KEYWORD]: `must be ${IDENTIFIER_WORDS}`, description: 'the client\'s key of the task, unique per task type' });
export const EndpointName = Type.String({ pattern: ENDPOINT_PATTERN.source, [ERROR_KEYWORD]: `must be an endpoint name (${ENDPOINT_PATTERN.source})` });
export const TaskTypeName = Type.String({ pattern: TASK_TYPE_PATTERN.source, [ERROR_KEYWORD]: 'must be a task type' });
const Time = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' });
const Count = Type.Integer({ minimum: 0 });
const Id = Type.Integer({ minimum: 1 });
const AnyJson = Type.Unknown({ description: 'any JSON' });

// ---- requests

const BatchSize = Type.Union([
  Type.Integer({ minimum: 1 }),
  Type.String({ pattern: '^(100|[1-9][0-9]?)%$' }),
], { [ERROR_KEYWORD]: 'must be an integer of at least 1 or a percentage from 1% to 100%', description: 'how many endpoints run the task at once: a number, or a share of the expected endpoints ("10%", rounded up)' });
const MaxErrors = Type.Union([
  Type.Integer({ minimum: 0 }),
  Type.String({ pattern: PERCENT_PATTERN.source }),
], { [ERROR_KEYWORD]: 'must be an integer of at least 0 or a percentage from 0% to 100%', description: 'sending stops once more endpoints than this failed or went missing: a number, or a share of the expected endpoints ("5%", rounded down); absent: no limit' });

export const RolloutBody = Type.Object({
  batch_size: BatchSize,
  max_errors: Type.Optional(MaxErrors),
}, { additionalProperties: false, [ERROR_KEYWORD]: 'must be an object with batch_size and optionally max_errors', description: 'a rolling send: a few endpoints at a time, stopping when too many fail' });

/** The most a task's `timeout` may be: 30 days. */
export const MAX_TASK_TIMEOUT = 30 * 86400;
const TimeoutSeconds = Type.Integer({
  minimum: 1, maximum: MAX_TASK_TIMEOUT, [ERROR_KEYWORD]: `must be a whole number of seconds from 1 to ${MAX_TASK_TIMEOUT}`,
  description: 'seconds the task may run from its send (default api.execution_timeout): then endpoints still pending become missing, those running failed (timed_out), and the task INCOMPLETE',
});

/** The longest selector taken (it is stored with the task). */
export const MAX_SELECTOR_CHARS = 1024;
const Selector = Type.String({
  minLength: 1, maxLength: MAX_SELECTOR_CHARS, [ERROR_KEYWORD]: `must be a label selector of 1 to ${MAX_SELECTOR_CHARS} characters`,
  description: 'a label selector (`role=web,region in (eu,us),!canary`) instead of `endpoints`: the task goes to the live endpoints of its type whose labels and facts match, resolved when it is created',
});

export const TaskRequestBody = Type.Object({
  identifier: Identifier,
  payload: Type.Optional(AnyJson),
  endpoints: Type.Optional(nullable(Type.Array(EndpointName, {
    maxItems: MAX_ENDPOINTS, uniqueItems: true,
    description: 'the endpoints that must perform the task; when absent or empty, those registered for the task type',
  }))),
  selector: Type.Optional(Selector),
  rollout: Type.Optional(RolloutBody),
  timeout: Type.Optional(TimeoutSeconds),
  notify: Type.Optional(Type.String({
    minLength: 1, maxLength: 2048, [ERROR_KEYWORD]: 'must be an https URL of at most 2048 characters',
    description: 'a URL the task\'s end (task.done, task.incomplete, task.stopped, task.cancelled) is POSTed to, signed with api.webhooks.notify_secret (Standard Webhooks); only with api.webhooks.allow_per_task_urls',
  })),
  allow_unknown_endpoints: Type.Optional(Type.Boolean({
    description: 'true: listed endpoints that never registered and were not added are accepted (their queues keep the task until they appear); else such a task is refused with 422 unknown_endpoints',
    [ERROR_KEYWORD]: 'must be true or false',
  })),
}, { additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object', example: { identifier: 'deploy-42', payload: { version: '1.2.3' }, endpoints: ['console1', 'console2'] } });
export type TaskRequestBody = Static<typeof TaskRequestBody>;

export const RetryBody = Type.Object({
  endpoints: Type.Union([
    enumOf([ENDPOINT_STATE.FAILED, ENDPOINT_STATE.MISSING, 'unfinished']),
    Type.Array(EndpointName, { minItems: 1, maxItems: MAX_ENDPOINTS }),
  ], { [ERROR_KEYWORD]: `must be failed, missing, unfinished or a list of 1 to ${MAX_ENDPOINTS} endpoint names` }),
}, { additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object' });
export type RetryBody = Static<typeof RetryBody>;

export const TokenBody = Type.Object({
  name: Type.String({ pattern: TOKEN_NAME_PATTERN.source, [ERROR_KEYWORD]: 'must be 1-64 characters of A-Z a-z 0-9 . _ -' }),
  scopes: Type.Array(Type.String({ pattern: SCOPE_PATTERN.source, [ERROR_KEYWORD]: 'must be read, operate, admin, submit:* or submit:<task_type>' }), { minItems: 1, maxItems: 64, uniqueItems: true }),
}, { additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object' });
export type TokenBody = Static<typeof TokenBody>;

/** A schedule's name: its tasks' identifiers are `<name>-<UTC time>` (17 more characters), within 64. */
export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,46}$/;
export const ScheduleName = Type.String({ pattern: SCHEDULE_NAME_PATTERN.source, [ERROR_KEYWORD]: 'must be 1-47 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)' });
const ScheduleFields = {
  task_type: TaskTypeName,
  cron: Type.String({ minLength: 1, maxLength: 255, [ERROR_KEYWORD]: 'must be a cron expression of 1-255 characters', description: 'five fields (minute hour day-of-month month day-of-week), six with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly; read in `timezone`; give this or `every`' }),
  every: Type.String({ pattern: '^(?:[0-9]{1,7}[smhd])+$', maxLength: 32, [ERROR_KEYWORD]: 'must be a duration such as 30s, 5m, 1h30m or 1d', description: 'a fixed interval (at least 1s), counted from when the schedule was created or its timing last changed; give this or `cron`' }),
  timezone: Type.String({ minLength: 1, maxLength: 64, [ERROR_KEYWORD]: 'must be an IANA time zone name such as UTC or Europe/Berlin', description: 'IANA time zone the cron expression is read in (default UTC)' }),
  payload: AnyJson,
  endpoints: nullable(Type.Array(EndpointName, {
    maxItems: MAX_ENDPOINTS, uniqueItems: true, description: 'the endpoints each task lists; when absent or empty, those registered for the task type when it fires',
  })),
  selector: nullable(Type.String({
    minLength: 1, maxLength: MAX_SELECTOR_CHARS, [ERROR_KEYWORD]: `must be a label selector of 1 to ${MAX_SELECTOR_CHARS} characters, or null`,
    description: 'a label selector instead of `endpoints`: each firing\'s task goes to the live endpoints of the type that match then',
  })),
  rollout: nullable(Type.Object(RolloutBody.properties, {
    additionalProperties: false, [ERROR_KEYWORD]: 'must be an object with batch_size and optionally max_errors', description: 'handed to each task as its `rollout`',
  })),
  paused: Type.Boolean({ description: 'a paused schedule does not fire' }),
};
const f = ScheduleFields;
const ScheduleOptions = {
  cron: Type.Optional(f.cron), every: Type.Optional(f.every), timezone: Type.Optional(f.timezone), payload: Type.Optional(f.payload),
  endpoints: Type.Optional(f.endpoints), selector: Type.Optional(f.selector), rollout: Type.Optional(f.rollout), paused: Type.Optional(f.paused),
};

export const ScheduleBody = Type.Object({ name: ScheduleName, task_type: f.task_type, ...ScheduleOptions }, {
  additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object',
  example: { name: 'nightly-backup', task_type: 'backup', cron: '30 2 * * *', timezone: 'Europe/Berlin', payload: { keep: 7 } },
});
export type ScheduleBody = Static<typeof ScheduleBody>;

export const SchedulePatchBody = Type.Object({ task_type: Type.Optional(f.task_type), ...ScheduleOptions }, {
  additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object', example: { cron: '0 3 * * *' },
});
export type SchedulePatchBody = Static<typeof SchedulePatchBody>;

/** A webhook's id in a path: a positive integer (anything else is an unknown webhook: 404). */
export const WEBHOOK_ID_PATTERN = /^[1-9][0-9]{0,15}$/;
export const WebhookId = Type.String({ pattern: WEBHOOK_ID_PATTERN.source, description: 'the id POST /webhooks answered' });
/** The delivery log of a subscription, or `notify`: the deliveries to tasks' own notify URLs. */
export const DELIVERY_LOG_PATTERN = /^(?:[1-9][0-9]{0,15}|notify)$/;
export const DeliveryLogId = Type.String({
  pattern: DELIVERY_LOG_PATTERN.source, description: 'the id POST /webhooks answered, or `notify`: the deliveries to tasks\' own `notify` URLs',
});
const WebhookFields = {
  url: Type.String({ minLength: 1, maxLength: 2048, [ERROR_KEYWORD]: 'must be an https URL of at most 2048 characters', description: 'where the events are POSTed: https (http only with api.webhooks.allow_http)' }),
  events: Type.Array(enumOf(WEBHOOK_EVENTS), {
    minItems: 1, maxItems: WEBHOOK_EVENTS.length, uniqueItems: true, [ERROR_KEYWORD]: `must be a list of one or more of ${WEBHOOK_EVENTS.join(', ')}, each once`,
    description: 'the events to receive',
  }),
  types: nullable(Type.Array(TaskTypeName, { maxItems: 256, uniqueItems: true, description: 'only tasks of these types; absent, null or empty: every type' })),
  description: nullable(Type.String({ maxLength: 255, [ERROR_KEYWORD]: 'must be a string of at most 255 characters' })),
  selector: nullable(Type.String({
    minLength: 1, maxLength: MAX_SELECTOR_CHARS, [ERROR_KEYWORD]: `must be a label selector of 1 to ${MAX_SELECTOR_CHARS} characters, or null`,
    description: 'only the events of tasks some endpoint of which matches this label selector (labels and facts), and the `endpoint.stale` of matching endpoints; absent or null: all',
  })),
};
export const WebhookBody = Type.Object({
  url: WebhookFields.url, events: WebhookFields.events, types: Type.Optional(WebhookFields.types), selector: Type.Optional(WebhookFields.selector),
  description: Type.Optional(WebhookFields.description),
}, {
  additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object',
  example: { url: 'https://hooks.example.com/tasker', events: ['task.done', 'task.incomplete'], types: ['backup'], description: 'ops channel' },
});
export type WebhookBody = Static<typeof WebhookBody>;
export const WebhookPatchBody = Type.Object({
  url: Type.Optional(WebhookFields.url), events: Type.Optional(WebhookFields.events), types: Type.Optional(WebhookFields.types),
  selector: Type.Optional(WebhookFields.selector), description: Type.Optional(WebhookFields.description),
  enabled: Type.Optional(Type.Boolean({ description: 'false stops deliveries (they wait); true re-enables a subscription, also one disabled after failing' })),
}, { additionalProperties: false, [ERROR_KEYWORD]: 'must be a JSON object', example: { enabled: true } });
export type WebhookPatchBody = Static<typeof WebhookPatchBody>;

const ISO_TIME = '^\\d{4}-\\d\\d-\\d\\d(T\\d\\d:\\d\\d(:\\d\\d(\\.\\d{1,9})?)?(Z|[+-]\\d\\d:\\d\\d))?$';
const TimeParam = Type.String({ pattern: ISO_TIME, [ERROR_KEYWORD]: 'must be an ISO 8601 time such as 2026-11-24T10:00:00Z' });
const Cursor = Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$', [ERROR_KEYWORD]: 'is not a cursor this API gave', description: 'next_cursor of the previous page' });
const limit = (def: number, max: number) => Type.Integer({ minimum: 1, maximum: max, default: def, [ERROR_KEYWORD]: `must be an integer from 1 to ${max}` });
const StateParam = enumOf(SHOWN_STATES, 'an endpoint\'s state');

export const TaskListQuery = Type.Object({
  status: Type.Optional(enumOf(TASK_STATUSES)),
  endpoint: Type.Optional(EndpointName),
  state: Type.Optional(StateParam),
  since: Type.Optional(TimeParam),
  until: Type.Optional(TimeParam),
  identifier_prefix: Type.Optional(Type.String({ pattern: IDENTIFIER_PATTERN.source, [ERROR_KEYWORD]: `must be ${IDENTIFIER_WORDS}` })),
  limit: Type.Optional(limit(50, 500)),
  cursor: Type.Optional(Cursor),
}, { additionalProperties: false });

export const TaskQuery = Type.Object({
  wait: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 60, [ERROR_KEYWORD]: 'must be a number of seconds above 0 and at most 60', description: 'answer once the task ended, or after this many seconds' })),
}, { additionalProperties: false });

export const ResponsesQuery = Type.Object({
  state: Type.Optional(StateParam), limit: Type.Optional(limit(100, 1000)), cursor: Type.Optional(Cursor),
}, { additionalProperties: false });

export const EventsQuery = Type.Object({ limit: Type.Optional(limit(1000, 5000)), cursor: Type.Optional(Cursor) }, { additionalProperties: false });

export const AllEventsQuery = Type.Object({
  type: Type.Optional(TaskTypeName), limit: Type.Optional(limit(1000, 5000)), cursor: Type.Optional(Cursor),
}, { additionalProperties: false });

export const EndpointListQuery = Type.Object({
  limit: Type.Optional(limit(100, 1000)), cursor: Type.Optional(Cursor),
  selector: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_SELECTOR_CHARS, [ERROR_KEYWORD]: `must be a label selector of 1 to ${MAX_SELECTOR_CHARS} characters`, description: 'only the endpoints whose labels and facts match this label selector (`count` says how many)' })),
}, { additionalProperties: false });

export const CreateTaskQuery = Type.Object({
  dry_run: Type.Optional(Type.Boolean({ [ERROR_KEYWORD]: 'must be true or false', description: 'true: answer the endpoints the task would go to (200), create and send nothing' })),
}, { additionalProperties: false });

export const DryRunAnswer = Type.Object({
  dry_run: Type.Literal(true),
  selector: nullable(Type.String({ description: 'the selector asked, null when none' })),
  endpoints: Type.Array(Type.String(), { description: 'the endpoints the task would go to, by name' }),
  count: Count,
});

export const EndpointResponsesQuery = Type.Object({
  state: Type.Optional(StateParam), type: Type.Optional(TaskTypeName), since: Type.Optional(TimeParam), until: Type.Optional(TimeParam),
  limit: Type.Optional(limit(100, 1000)), cursor: Type.Optional(Cursor),
}, { additionalProperties: false });

export const EndpointRemoveQuery = Type.Object({
  force: Type.Optional(Type.Boolean({ description: 'true: remove it even while a handler of it runs a task (that response is cancelled and the handler told to abort)', [ERROR_KEYWORD]: 'must be true or false' })),
}, { additionalProperties: false });

export const RemovedEndpoint = Type.Object({
  name: Type.String(),
  cancelled: Type.Integer({ description: 'its open responses, finished as cancelled' }),
});

export const NoQuery = Type.Object({}, { additionalProperties: false });

// ---- answers

export const ErrorAnswer = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'stable, for programs' }), message: Type.String({ description: 'for people' }),
    position: Type.Optional(Type.Integer({ minimum: 0, description: 'bad_selector: the 0-based offset of the offending character in the selector (its length when it ended too early)' })),
  }),
}, { $id: 'Error' });

const Counts = Type.Object({
  expected: Count, received: Count, finished: Count,
  pending: Count, running: Count, succeeded: Count, failed: Count, missing: Count, cancelled: Count, queued: Count, skipped: Count,
}, { description: 'how many expected endpoints received and finished the task, and how many are in each state' });

export const TaskAnswer = Type.Object({
  id: Id,
  identifier: Type.String(),
  type: Type.String(),
  status: enumOf(TASK_STATUSES),
  payload: AnyJson,
  endpoints: Type.Array(Type.String(), { description: 'the expected endpoints (for a selector, what it resolved to when the task was created)' }),
  selector: nullable(Type.String({ description: 'the label selector the task was addressed with; null when it listed endpoints or none' })),
  start_time: Time,
  sent_time: nullable(Time),
  end_time: nullable(Time),
  timeout: Type.Integer({ minimum: 1, description: 'seconds the task may run from its send' }),
  deadline: nullable(Type.String({ format: 'date-time', description: 'when the run\'s time is up (ISO 8601, UTC, on the database\'s clock): the send plus `timeout`, the creation plus it until sent' })),
  notify: nullable(Type.String({ description: 'the URL the task\'s end is POSTed to (its POST\'s `notify`); null: none' })),
  responses: Counts,
  rollout: nullable(Type.Object({
    batch_size: Type.Integer({ minimum: 1, description: 'at most this many endpoints sent the task and not finished at once' }),
    max_errors: nullable(Type.Integer({ minimum: 0, description: 'no more sends once more endpoints than this failed or went missing; null: no limit' })),
    request: Type.Object({ batch_size: BatchSize, max_errors: Type.Optional(MaxErrors) }, { description: 'as asked' }),
    sent: Count, running: Count, remaining: Count, errors: Count,
  }, { description: 'a rolling send (null for a task sent to all its endpoints at once): endpoints sent the task, running it, waiting for a slot, and the errors counted' })),
}, { $id: 'Task' });

export const ResponseAnswer = Type.Object({
  id: Id,
  task_id: Id,
  endpoint: Type.String(),
  state: StateParam,
  failure: Type.Optional(enumOf(['error', 'timed_out', 'gave_up'])),
  round: Count,
  status: Type.Union([Type.Literal(0), Type.Literal(1), Type.Null()], { description: 'null: not heard from; 0: received (running); 1: finished' }),
  errnr: Type.Integer(),
  errmsg: nullable(Type.String()),
  payload: AnyJson,
  attempts: Count,
  start_time: nullable(Time),
  last_modified_time: Time,
}, { $id: 'TaskResponse' });

export const EventAnswer = Type.Object({
  id: Id, task_id: Id, type: Type.String(), identifier: Type.String(), time: Time, kind: enumOf(EVENT_KINDS),
  detail: Type.Optional(nullable(Type.Record(Type.String(), Type.Unknown()))),
  actor: nullable(Type.String({ description: 'the name of the token that did it' })),
}, { $id: 'TaskEvent' });

const page = <T extends TSchema>(key: string, item: T) => Type.Object({
  [key]: Type.Array(item), next_cursor: nullable(Type.String()),
});

export const TaskPage = page('tasks', Type.Ref('Task'));
export const TaskWithResponses = Type.Object({ task: Type.Ref('Task'), taskResponseList: Type.Array(Type.Ref('TaskResponse')) });
export const ResponsePage = page('responses', Type.Ref('TaskResponse'));
export const EventPage = page('events', Type.Ref('TaskEvent'));
export const RetryAnswer = Type.Object({ task: Type.Ref('Task'), retried: Type.Array(Type.String()) });
const EndpointPageBase = page('endpoints', Type.Object({
  name: Type.String(), task_types: Type.Array(Type.String()), first_seen: Time, last_heartbeat: Time,
  alive: Type.Boolean({ description: 'heard from within three heartbeat intervals' }),
  stale: Type.Boolean({ description: 'not heard from within api.endpoint_stale_after' }),
  waiting_since: Type.Union([Time, Type.Null()], {
    description: 'as its latest heartbeat said: since when its deliveries wait (nothing runs) because no server side answered its requests; null: not waiting',
  }),
  labels: Type.Record(Type.String(), Type.String(), { description: 'its labels, from its configuration, as its latest register or heartbeat said; {}: none' }),
  facts: Type.Object({
    hostname: Type.Optional(Type.String()), os: Type.Optional(Type.String()), arch: Type.Optional(Type.String()), version: Type.Optional(Type.String()),
    task_types: Type.Optional(Type.Array(Type.String())), handler_kinds: Type.Optional(Type.Array(Type.String())),
  }, { description: 'what its manager reports about itself (host name, os, arch, tasker version, task types, handler kinds); {}: it reported none' }),
}));
export const EndpointPage = Type.Object({
  ...EndpointPageBase.properties,
  count: Type.Optional(Type.Integer({ minimum: 0, description: 'with `selector`: how many registered endpoints match it in all (every page)' })),
});
export const EndpointResponsePage = page('responses', Type.Intersect([
  Type.Object({ type: Type.String(), identifier: Type.String(), task_status: enumOf(TASK_STATUSES) }), Type.Ref('TaskResponse'),
]));

const TokenInfo = Type.Object({
  name: Type.String(), scopes: Type.Array(Type.String()), created_time: Time, last_used_time: nullable(Time), revoked_time: nullable(Time),
});
export const TokenPage = Type.Object({ tokens: Type.Array(TokenInfo) });
export const CreatedToken = Type.Object({ name: Type.String(), scopes: Type.Array(Type.String()), token: Type.String({ description: 'shown once; only its hash is stored' }) });

export const ScheduleAnswer = Type.Object({
  name: Type.String(),
  task_type: Type.String(),
  cron: nullable(Type.String()),
  every: nullable(Type.String()),
  timezone: Type.String(),
  payload: AnyJson,
  endpoints: nullable(Type.Array(Type.String())),
  selector: nullable(Type.String({ description: 'the label selector each firing resolves; null: none' })),
  rollout: nullable(Type.Record(Type.String(), Type.Unknown())),
  paused: Type.Boolean(),
  next_fire_time: nullable(Type.String({ format: 'date-time', description: 'ISO 8601, UTC; null while paused, or when the cron matches no later time' })),
  last_fire_time: nullable(Type.String({ format: 'date-time', description: 'the scheduled time of the last firing (ISO 8601, UTC)' })),
  last_task_identifier: nullable(Type.String({ description: 'the identifier of the last task it created: `<name>-<scheduled time in UTC>`' })),
  last_error: nullable(Type.String({ description: 'why the last firing created no task; null once one did' })),
  created_by: nullable(Type.String()),
  created_time: Time,
  updated_time: Time,
}, { $id: 'Schedule' });
export const ScheduleList = Type.Object({ schedules: Type.Array(Type.Ref('Schedule')) });

export const WebhookAnswer = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  types: nullable(Type.Array(Type.String())),
  selector: nullable(Type.String({ description: 'the label selector the events are filtered by, as written; null: none' })),
  description: nullable(Type.String()),
  enabled: Type.Boolean(),
  disabled_reason: nullable(Type.String({ description: 'why it is disabled: its deliveries failed for api.webhooks.retry_for, or a PATCH' })),
  failing_since: nullable(Type.String({ format: 'date-time', description: 'the first failed delivery since the last success (ISO 8601, UTC)' })),
  previous_secret_until: nullable(Type.String({ format: 'date-time', description: 'after a rotation: until when the replaced secret signs deliveries too (ISO 8601, UTC)' })),
  created_by: nullable(Type.String()),
  created_time: Time,
  updated_time: Time,
}, { $id: 'Webhook' });
export const WebhookList = Type.Object({ webhooks: Type.Array(Type.Ref('Webhook')) });
export const CreatedWebhook = Type.Intersect([Type.Ref('Webhook'), Type.Object({
  secret: Type.String({ description: 'the signing secret (whsec_ and base64): shown once, here' }),
})]);
export const DeliveryPage = Type.Object({
  deliveries: Type.Array(Type.Object({
    id: Type.Integer(),
    message_id: Type.String({ description: 'the `webhook-id` header it is sent with (the same at every attempt)' }),
    event: Type.String(),
    task: nullable(Type.Object({ id: Type.Integer(), type: Type.String(), identifier: Type.String() }, { description: 'null for an endpoint event' })),
    endpoint: nullable(Type.String({ description: 'the endpoint an `endpoint.stale` event is about; null for a task event' })),
    event_time: Time,
    status: enumOf(DELIVERY_STATUSES),
    attempt: Type.Integer({ description: 'attempts made so far' }),
    http_status: nullable(Type.Integer({ description: 'of the last attempt' })),
    duration_ms: nullable(Type.Integer({ description: 'of the last attempt' })),
    last_attempt_time: nullable(Type.String({ format: 'date-time' })),
    next_time: nullable(Type.String({ format: 'date-time', description: 'when it is tried next (pending only)' })),
    last_error: nullable(Type.String()),
  })),
  next_before: nullable(Type.Integer({ description: 'pass as `before` for the older ones; null: none' })),
});
export const DeliveryAnswer = DeliveryPage.properties.deliveries.items;
export const TestAnswer = Type.Object({
  message_id: Type.String({ description: 'the webhook-id it was sent under (msg_test_...)' }),
  ok: Type.Boolean({ description: 'a 2xx came back within api.webhooks.timeout' }),
  http_status: nullable(Type.Integer()),
  duration_ms: Type.Integer(),
  error: nullable(Type.String({ description: 'why it is not ok' })),
});
export const DELIVERY_ID_PATTERN = /^[1-9][0-9]{0,15}$/;
export const DeliveryId = Type.String({ pattern: DELIVERY_ID_PATTERN.source, description: 'a delivery\'s id (its `id` in the delivery log)' });
export const DeliveriesQuery = Type.Object({
  limit: Type.Optional(limit(50, 1000)),
  before: Type.Optional(Type.Integer({ minimum: 1, [ERROR_KEYWORD]: 'must be a positive integer (a delivery id)' })),
}, { additionalProperties: false });

/** Schemas that answers refer to by `$ref`, shared in the OpenAPI document's components. */
export const SHARED_SCHEMAS: readonly TSchema[] = [ErrorAnswer, TaskAnswer, ResponseAnswer, EventAnswer, ScheduleAnswer, WebhookAnswer];
