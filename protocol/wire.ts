import { Static, TSchema, Type } from '@sinclair/typebox';
import Ajv2020, { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { InvalidMessageError } from '../lib/errors';
import { MAX_ERRMSG_CHARS, MAX_RESPONSE_PAYLOAD_BYTES } from './errnr';
import { labelsProblem, MAX_FACT_CHARS, MAX_FACT_ITEMS, MAX_LABELS } from './labels';
import { ENDPOINT_PATTERN, TASK_TYPE_PATTERN } from './names';

/**
 * Every message of the endpoint protocol (docs/protocol.md "On the wire"), declared once as a JSON Schema. The
 * TypeScript types and the validation of everything read off a queue come from these declarations, and
 * `npm run protocol-schemas` prints them for writers of endpoints in other languages. Unknown fields
 * are ignored, so that either side can add one without breaking the other.
 */

export const CONTENT_TYPE = 'application/json';

/**
 * AMQP header set (true) on a task published again by the resend job (the broker had not confirmed the
 * first publish): an endpoint may have seen an earlier copy, so it asks the server side before running
 * it. Redeliveries of the same message carry the broker's own `redelivered` flag instead.
 */
export const RESENT_HEADER = 'x-tasker-resent';

export * from './errnr';

/** Most events in one response message. */
export const MAX_EVENTS_PER_MESSAGE = 1000;

const INT32 = { minimum: -(2 ** 31), maximum: 2 ** 31 - 1 };
const TaskId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'the task id (message_id of the task message)' });
const TaskTypeName = Type.String({ pattern: TASK_TYPE_PATTERN.source });
const EndpointName = Type.String({ pattern: ENDPOINT_PATTERN.source });
const Time = Type.String({ pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?(Z|[+-]\\d\\d:\\d\\d)$', description: 'ISO 8601 time' });
const Attempt = Type.Integer({ minimum: 1, maximum: 1_000_000 });
const Round = Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'how often the endpoint was sent the task again by a retry; 0 (or absent) the first time' });

/** Server → endpoint: one task, on the endpoint's queue `<exchange>.<task_type>.<endpoint>`. */
export const TaskMessageSchema = Type.Object({
  id: TaskId,
  identifier: Type.String({ minLength: 1, maxLength: 64 }),
  type: TaskTypeName,
  payload: Type.Optional(Type.Unknown({ description: 'the client\'s payload, any JSON' })),
  // Compared with the endpoint's own name only: not checked one by one, so that a broadcast to a thousand
  // endpoints costs each of them no more than reading it.
  endpoints: Type.Array(Type.String({ maxLength: 64 }), { description: 'the expected endpoints; an endpoint not listed acks and skips the task' }),
  start_time: Time,
  round: Type.Optional(Round),
}, { $id: 'TaskMessage', title: 'task message' });
export type TaskMessage = Static<typeof TaskMessageSchema>;

/** Endpoint → server: the handler of a task has been running for `manager.receipt_delay`. */
export const ReceiptEventSchema = Type.Object({
  kind: Type.Literal('receipt'),
  task_id: TaskId,
  endpoint: EndpointName,
  attempt: Attempt,
  round: Type.Optional(Round),
  start_time: Time,
}, { $id: 'ReceiptEvent', title: 'receipt event' });
export type ReceiptEvent = Static<typeof ReceiptEventSchema>;

/** Endpoint → server: the handler finished; the endpoint acks the task once the broker confirmed this. */
export const ResultEventSchema = Type.Object({
  kind: Type.Literal('result'),
  task_id: TaskId,
  endpoint: EndpointName,
  attempt: Attempt,
  round: Type.Optional(Round),
  start_time: Time,
  end_time: Time,
  errnr: Type.Integer({ ...INT32, description: '0: success' }),
  errmsg: Type.Optional(Type.Union([Type.String({ maxLength: MAX_ERRMSG_CHARS + 1 }), Type.Null()])),
  payload: Type.Optional(Type.Unknown({ description: `the handler's result, any JSON up to ${MAX_RESPONSE_PAYLOAD_BYTES} bytes` })),
  aborted: Type.Optional(Type.Boolean({ description: 'true when the run was told to abort (a cancel, or the task\'s deadline) before it ended' })),
}, { $id: 'ResultEvent', title: 'result event' });
export type ResultEvent = Static<typeof ResultEventSchema>;

const FactText = Type.String({ maxLength: MAX_FACT_CHARS });
/** Checked key by key in `checkEvent` (the Kubernetes rules of protocol/labels.ts); the schema bounds the size. */
const Labels = Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 63 }), {
  maxProperties: MAX_LABELS,
  description: `the endpoint's labels from its configuration (at most ${MAX_LABELS}; keys and values as Kubernetes labels); absent: none`,
});
const Facts = Type.Object({
  hostname: Type.Optional(FactText),
  os: Type.Optional(Type.String({ maxLength: MAX_FACT_CHARS, description: 'the platform, as Node.js names it (linux, darwin, win32)' })),
  arch: Type.Optional(Type.String({ maxLength: MAX_FACT_CHARS, description: 'the CPU architecture, as Node.js names it (x64, arm64)' })),
  version: Type.Optional(Type.String({ maxLength: MAX_FACT_CHARS, description: 'the tasker version of the manager' })),
  task_types: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: MAX_FACT_ITEMS })),
  handler_kinds: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 16, description: 'how its handlers are given: module, command' })),
}, { maxProperties: 32, description: 'what the endpoint reports about itself; other fields are ignored' });

/** Endpoint → server: the endpoint serves these task types; sent on start (register) and then periodically (heartbeat). */
export const PresenceEventSchema = Type.Object({
  kind: Type.Union([Type.Literal('register'), Type.Literal('heartbeat')]),
  endpoint: EndpointName,
  task_types: Type.Array(TaskTypeName, { minItems: 1, maxItems: 1000 }),
  time: Time,
  /** Since when the endpoint's deliveries wait because no server side answers its requests (absent: not waiting). */
  waiting_since: Type.Optional(Time),
  labels: Type.Optional(Labels),
  facts: Type.Optional(Facts),
}, { $id: 'PresenceEvent', title: 'register and heartbeat events' });
export type PresenceEvent = Static<typeof PresenceEventSchema>;

/** Most lines in one output event, and most characters of one line (a longer line is cut by its sender). */
export const MAX_OUTPUT_LINES_PER_EVENT = 1000;
export const MAX_OUTPUT_LINE_CHARS = 4000;
export const OUTPUT_STREAMS = ['stdout', 'stderr', 'log'] as const;
export type OutputStream = (typeof OUTPUT_STREAMS)[number];

/**
 * Endpoint → server: lines a run wrote while it runs (a command's stdout and stderr, a module handler's
 * `response.log`). `seq` numbers the first line: the lines of one run (task, endpoint, round, attempt) are
 * numbered 1, 2, 3… in the order written, so that a message that comes twice stores nothing twice.
 */
export const OutputEventSchema = Type.Object({
  kind: Type.Literal('output'),
  task_id: TaskId,
  endpoint: EndpointName,
  attempt: Attempt,
  round: Type.Optional(Round),
  seq: Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'the number of the first line within its run, from 1' }),
  lines: Type.Array(Type.Object({
    stream: Type.Union(OUTPUT_STREAMS.map((s) => Type.Literal(s))),
    text: Type.String({ maxLength: MAX_OUTPUT_LINE_CHARS }),
    t: Time,
  }), { minItems: 1, maxItems: MAX_OUTPUT_LINES_PER_EVENT }),
}, { $id: 'OutputEvent', title: 'output event' });
export type OutputEvent = Static<typeof OutputEventSchema>;
export type OutputLine = OutputEvent['lines'][number];

export type ResponseEvent = ReceiptEvent | ResultEvent;
export type WireEvent = ResponseEvent | PresenceEvent | OutputEvent;

/**
 * Endpoint → server, request/reply: what to do with a copy of a task that may have run before (a
 * redelivery, or a resent task). The server records the new attempt in the same step.
 */
export const StateRequestSchema = Type.Object({
  kind: Type.Literal('state'),
  task_id: TaskId,
  endpoint: EndpointName,
  redelivered: Type.Boolean(),
  resent: Type.Boolean(),
  round: Type.Optional(Round),
  max_attempts: Type.Integer({ minimum: 1, maximum: 1000, description: 'starts of a handler allowed for one response' }),
}, { $id: 'StateRequest', title: 'state request' });
export type StateRequest = Static<typeof StateRequestSchema>;

export const STATE_ACTIONS = ['run', 'finished', 'exhausted', 'cancelled', 'unknown', 'refused', 'unavailable'] as const;
export type StateAction = (typeof STATE_ACTIONS)[number];

/**
 * Server → endpoint, the reply: `run` (with the attempt number to run as), `finished` (ack without
 * running: done, or a copy of an earlier round), `exhausted` (the server finished the response with errnr
 * 125: dead-letter the task), `cancelled` (the task was cancelled before this endpoint started it: ack
 * without running),
 * `unknown` (no such task: dead-letter), `refused` (the task does not expect this endpoint, or the
 * request's endpoint is not the sender's: dead-letter), `unavailable` (the database is down: ask again later).
 */
export const StateReplySchema = Type.Object({
  task_id: TaskId,
  endpoint: EndpointName,
  action: Type.Union(STATE_ACTIONS.map((a) => Type.Literal(a))),
  attempt: Type.Optional(Attempt),
}, { $id: 'StateReply', title: 'state reply' });
export type StateReply = Static<typeof StateReplySchema>;

/**
 * Endpoint → server, request/reply: the tasks cancelled for this endpoint (with their round), asked by a
 * manager each time it connects, before it runs anything, so that a task cancelled while it was away and
 * still waiting in its queue is skipped. An entry (task, round) stands for every round up to `round` (a
 * round older than the current one is superseded and never runs): a task retried while its previous round
 * never finished is listed with the round before its current one.
 */
/** The most entries one cancelled-tasks reply may carry (the bound of `api.cancelled_listed`). */
export const MAX_CANCELLED_LISTED = 100_000;

export const CancelledRequestSchema = Type.Object({
  kind: Type.Literal('cancelled'),
  endpoint: EndpointName,
}, { $id: 'CancelledRequest', title: 'cancelled-tasks request' });
export type CancelledRequest = Static<typeof CancelledRequestSchema>;

export const CancelledReplySchema = Type.Object({
  endpoint: EndpointName,
  action: Type.Union([Type.Literal('cancelled'), Type.Literal('refused'), Type.Literal('unavailable')]),
  /** Newest task first; at most the server's `api.cancelled_listed`. */
  cancelled: Type.Array(Type.Object({ task_id: TaskId, round: Round }), { maxItems: MAX_CANCELLED_LISTED }),
  /**
   * True when the list was cut: it is complete only for tasks from its oldest (lowest) task id on; the
   * endpoint asks the server side (a state request) about any older task before running it.
   */
  truncated: Type.Optional(Type.Boolean()),
}, { $id: 'CancelledReply', title: 'cancelled-tasks reply' });
export type CancelledReply = Static<typeof CancelledReplySchema>;

/**
 * Server → every endpoint manager, on the control fanout: a task was cancelled, or retried while a round
 * had not finished. An endpoint listed in `rounds` skips that round of the task (and any older one) from
 * now on and aborts its handler if one is running.
 */
export const ControlMessageSchema = Type.Object({
  kind: Type.Literal('cancel'),
  task_id: TaskId,
  rounds: Type.Record(Type.String({ maxLength: 64 }), Round),
}, { $id: 'ControlMessage', title: 'control message' });
export type ControlMessage = Static<typeof ControlMessageSchema>;

/**
 * Between API processes, on the notify fanout (not part of the endpoint protocol): the tasks whose
 * history moved, each with the id of its newest event and whether it ended, so that every process wakes
 * its waiting clients and streams. Small on purpose: a stream reads the events themselves.
 */
export const NoticeSchema = Type.Object({
  tasks: Type.Array(Type.Object({
    id: TaskId,
    type: TaskTypeName,
    last: TaskId,
    ended: Type.Boolean(),
  }), { maxItems: 100_000 }),
}, { $id: 'Notice', title: 'notice between API processes' });
export type Notice = Static<typeof NoticeSchema>;
export type NoticeTask = Notice['tasks'][number];

export const PROTOCOL_SCHEMAS: readonly TSchema[] = [
  TaskMessageSchema, ReceiptEventSchema, ResultEventSchema, PresenceEventSchema, OutputEventSchema, StateRequestSchema, StateReplySchema,
  CancelledRequestSchema, CancelledReplySchema, ControlMessageSchema,
];

const ajv = new Ajv2020({ allErrors: false, strict: true });
const compile = <T extends TSchema>(schema: T): ValidateFunction<Static<T>> => ajv.compile<Static<T>>(schema);
const validators = {
  task: compile(TaskMessageSchema),
  receipt: compile(ReceiptEventSchema),
  result: compile(ResultEventSchema),
  presence: compile(PresenceEventSchema),
  output: compile(OutputEventSchema),
  state: compile(StateRequestSchema),
  reply: compile(StateReplySchema),
  cancelledRequest: compile(CancelledRequestSchema),
  cancelledReply: compile(CancelledReplySchema),
  control: compile(ControlMessageSchema),
  notice: compile(NoticeSchema),
};

function describe(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'invalid';
  return `${e.instancePath || 'body'} ${e.message ?? 'is invalid'}`;
}

function parseJson(body: Buffer, contentType: string | undefined): unknown {
  // A message without a content type is read as JSON; anything else (the original's pickles) is refused.
  if (contentType !== undefined && contentType !== CONTENT_TYPE) {
    throw new InvalidMessageError(`content type '${contentType}' is not ${CONTENT_TYPE}`);
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidMessageError('body is not JSON');
  }
}

/** Time fields must name a real moment between 1970 and 9999 (the pattern alone lets 2026-13-45 through). */
const TIME_FIELDS = ['start_time', 'end_time', 'time', 't'] as const;

function checkTimes(value: object, what: string): void {
  for (const field of TIME_FIELDS) {
    const v = (value as Record<string, unknown>)[field];
    if (typeof v !== 'string') continue;
    const ms = Date.parse(v);
    if (!(ms >= 0 && ms < Date.UTC(10_000, 0, 1))) throw new InvalidMessageError(`${what}: /${field} is not a time between 1970 and 9999`);
  }
}

function check<T>(validate: ValidateFunction<T>, value: unknown, what: string): T {
  if (!validate(value)) throw new InvalidMessageError(`${what}: ${describe(validate.errors)}`);
  checkTimes(value as Record<string, unknown>, what);
  return value;
}

export function encode(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export function decodeTaskMessage(body: Buffer, contentType: string | undefined): TaskMessage {
  const msg = check(validators.task, parseJson(body, contentType), 'task message');
  return { ...msg, payload: msg.payload ?? null, round: msg.round ?? 0 };
}

function checkEvent(value: unknown, index: number | null): WireEvent {
  const what = index === null ? 'event' : `event [${index}]`;
  const kind = (value as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case 'receipt': {
      const event = check(validators.receipt, value, what);
      return { ...event, round: event.round ?? 0 };
    }
    case 'result': {
      const event = check(validators.result, value, what);
      if (event.payload !== undefined && Buffer.byteLength(JSON.stringify(event.payload)) > MAX_RESPONSE_PAYLOAD_BYTES) {
        throw new InvalidMessageError(`${what}: payload is over ${MAX_RESPONSE_PAYLOAD_BYTES} bytes`);
      }
      return { ...event, round: event.round ?? 0, errmsg: event.errmsg ?? null, payload: event.payload ?? null };
    }
    case 'register':
    case 'heartbeat': {
      const event = check(validators.presence, value, what);
      const problem = event.labels ? labelsProblem(event.labels) : null;
      if (problem) throw new InvalidMessageError(`${what}: /labels ${problem.message}`);
      return event;
    }
    case 'output': {
      const event = check(validators.output, value, what);
      event.lines.forEach((line, i) => checkTimes(line, `${what}: /lines/${i}`));
      return { ...event, round: event.round ?? 0 };
    }
    default:
      throw new InvalidMessageError(`${what}: kind must be receipt, result, output, register or heartbeat`);
  }
}

/** A response message holds one event, or a list of events of the same endpoint. */
export function decodeEvents(body: Buffer, contentType: string | undefined): WireEvent[] {
  const value = parseJson(body, contentType);
  if (!Array.isArray(value)) return [checkEvent(value, null)];
  if (value.length === 0 || value.length > MAX_EVENTS_PER_MESSAGE) {
    throw new InvalidMessageError(`a list of events must hold 1 to ${MAX_EVENTS_PER_MESSAGE} events`);
  }
  const events = value.map((v, i) => checkEvent(v, i));
  if (new Set(events.map((e) => e.endpoint)).size > 1) throw new InvalidMessageError('a list of events must be of one endpoint');
  return events;
}

/** What the state queue carries: a state request, or a request for the cancelled tasks. */
export function decodeServerRequest(body: Buffer, contentType: string | undefined): StateRequest | CancelledRequest {
  const value = parseJson(body, contentType);
  if ((value as { kind?: unknown } | null)?.kind === 'cancelled') return check(validators.cancelledRequest, value, 'cancelled-tasks request');
  const req = check(validators.state, value, 'state request');
  return { ...req, round: req.round ?? 0 };
}

export function decodeStateReply(body: Buffer): StateReply {
  return check(validators.reply, parseJson(body, CONTENT_TYPE), 'state reply');
}

export function decodeCancelledReply(body: Buffer): CancelledReply {
  return check(validators.cancelledReply, parseJson(body, CONTENT_TYPE), 'cancelled-tasks reply');
}

export function decodeControlMessage(body: Buffer, contentType: string | undefined): ControlMessage {
  return check(validators.control, parseJson(body, contentType), 'control message');
}

export function decodeNotice(body: Buffer): Notice {
  return check(validators.notice, parseJson(body, CONTENT_TYPE), 'notice');
}
