import { InvalidMessageError } from './errors';
import type { Task } from './entities/task';
import { ENDPOINT_PATTERN, TASK_TYPE_PATTERN } from '../config/schema';

/**
 * The message every endpoint receives (SPEC §5): JSON, persistent, message_id = task id. `endpoints` is
 * the expected set, so a manager can skip a task that is not meant for it without asking the database.
 */
export interface TaskMessage {
  id: number;
  identifier: string;
  type: string;
  payload: unknown;
  endpoints: string[];
  start_time: string;
}

export const CONTENT_TYPE = 'application/json';

/**
 * AMQP header set (true) on a task published again by the resend job (the broker had not confirmed the
 * first publish): an endpoint may have seen an earlier copy, so it looks at its records before running
 * this one. Redeliveries of the same message carry the broker's own `redelivered` flag instead.
 */
export const RESENT_HEADER = 'x-tasker-resent';

export function toMessage(task: Task): TaskMessage {
  return {
    id: task.id,
    identifier: task.identifier,
    type: task.type,
    payload: task.payload,
    endpoints: task.expected_endpoints,
    start_time: task.start_time.toISOString(),
  };
}

export function encodeMessage(msg: TaskMessage): Buffer {
  return Buffer.from(JSON.stringify(msg));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses and checks a delivery's body; anything that is not a task of this shape is an InvalidMessageError. */
export function decodeMessage(body: Buffer, contentType: string | undefined): TaskMessage {
  if (contentType !== undefined && contentType !== CONTENT_TYPE) {
    throw new InvalidMessageError(`content type '${contentType}' is not ${CONTENT_TYPE}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidMessageError('body is not JSON');
  }
  if (!isObject(value)) throw new InvalidMessageError('body is not a JSON object');
  const { id, identifier, type, endpoints, start_time } = value;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) throw new InvalidMessageError('id must be a positive integer');
  if (typeof identifier !== 'string' || identifier.length === 0) throw new InvalidMessageError('identifier must be a string');
  if (typeof type !== 'string' || !TASK_TYPE_PATTERN.test(type)) throw new InvalidMessageError('type is not a task type name');
  if (!Array.isArray(endpoints) || !endpoints.every((e) => typeof e === 'string' && ENDPOINT_PATTERN.test(e))) {
    throw new InvalidMessageError('endpoints must be a list of endpoint names');
  }
  if (typeof start_time !== 'string' || Number.isNaN(Date.parse(start_time))) throw new InvalidMessageError('start_time must be an ISO time');
  return { id, identifier, type, payload: value.payload ?? null, endpoints: endpoints as string[], start_time };
}
