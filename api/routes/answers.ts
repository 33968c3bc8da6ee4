import { Type } from '@sinclair/typebox';
import type { Answer } from '../operation';
import { EndpointName, Identifier, TaskTypeName } from '../schemas';

/** What each error status means, for the document; every one answers `{"error": {"code", "message"}}`. */
const ERRORS: Record<number, string> = {
  400: 'invalid request: the message names the parameter or field',
  401: 'no valid bearer token',
  403: 'the token lacks the scope',
  404: 'unknown task type, task, endpoint, schedule or webhook',
  409: 'conflicts with the task\'s state, or the identifier (or schedule name) exists with another body',
  413: 'the body is over api.body_limit, or a task (POST, a schedule\'s firing) larger than the database takes in one statement (max_allowed_packet); nothing was stored',
  415: 'the body is not application/json',
  422: 'no endpoints listed and none registered for the task type',
  500: 'internal error (details only in the log)',
  503: 'the database or the broker is unavailable; retry later',
};

/** A route's answers: its own, the errors it names, and the ones every route may give. */
export function answers(own: Record<number, Answer>, errors: number[]): Record<number, Answer> {
  const all: Record<number, Answer> = { ...own };
  for (const status of [...errors, 500, 503]) all[status] = { description: ERRORS[status], schema: Type.Ref('Error') };
  return all;
}

/** POST of a task: 503 also when the standalone mode's in-process backlog is full, then with Retry-After. */
export const BACKLOG_ANSWER: Answer = {
  description: 'the database or the broker is unavailable, or (standalone mode) the backlog of tasks waiting for their endpoints is full (code backlog_full, with Retry-After); nothing was stored; retry later',
  schema: Type.Ref('Error'),
  headers: { 'Retry-After': { description: 'with backlog_full: seconds to wait before trying again', schema: Type.Integer({ minimum: 0 }) } },
};

/** An event stream: 503 also past the bounds on open streams (code too_many_streams, with Retry-After). */
export const STREAM_ANSWER: Answer = {
  description: 'the database or the broker is unavailable, or (code too_many_streams, with Retry-After) the server or this client holds its most event streams (api.sse_max_streams, api.sse_max_streams_per_client); retry later',
  schema: Type.Ref('Error'),
  headers: { 'Retry-After': { description: 'with too_many_streams: seconds to wait before trying again', schema: Type.Integer({ minimum: 0 }) } },
};

export const errorAnswer = (status: number): Answer => ({ description: ERRORS[status], schema: Type.Ref('Error') });

export const TYPE_PARAM = { type: TaskTypeName };
export const TASK_PARAMS = { type: TaskTypeName, identifier: Identifier };
export const ENDPOINT_PARAMS = { name: EndpointName };
