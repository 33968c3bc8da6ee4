/**
 * Every error the system reports to a client, with its stable `code` and HTTP `status`.
 * The API's error middleware maps these; anything else becomes a 500 without details.
 */
export class TaskerError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidRequestError extends TaskerError {
  constructor(message: string) { super('invalid_request', 400, message); }
}

/**
 * A label selector (protocol/label-selector.ts) that does not parse. `position` is the 0-based offset (in
 * UTF-16 code units, as JavaScript indexes strings) of the offending character, or the selector's length when
 * it ended too early, so that a client can point at it; the message names it too.
 */
export class SelectorSyntaxError extends TaskerError {
  constructor(readonly position: number, message: string) { super('bad_selector', 400, message); }
}

export class UnsupportedMediaTypeError extends TaskerError {
  constructor(message = 'Content-Type must be application/json') { super('unsupported_media_type', 415, message); }
}

export class PayloadTooLargeError extends TaskerError {
  constructor(limit: number) { super('payload_too_large', 413, `request body exceeds the limit of ${limit} bytes`); }
}

/**
 * A task that takes more bytes to store than the database takes in one statement (its `max_allowed_packet`,
 * less a margin): refused before anything is stored.
 */
export class TaskTooLargeError extends TaskerError {
  constructor(bytes: number, limit: number) {
    super('payload_too_large', 413, `the task takes ${bytes} bytes to store, more than the database takes in one statement (${limit} bytes)`);
  }
}

export class NotFoundError extends TaskerError {
  constructor(message: string) { super('not_found', 404, message); }
}

export class IdentifierConflictError extends TaskerError {
  constructor(type: string, identifier: string) {
    super('identifier_conflict', 409, `a ${type} task with identifier '${identifier}' exists with a different body`);
  }
}

/** The request is valid but the task's state does not allow it (a retry of a running endpoint, a cancel of a finished task). */
export class ConflictError extends TaskerError {
  constructor(code: string, message: string) { super(code, 409, message); }
}

/**
 * A retry of an endpoint whose current round was sent (or is about to be) and has not finished, on a task
 * still open: a second round beside it could run twice at once, so retries wait for the first to finish.
 */
export class EndpointPendingError extends TaskerError {
  constructor(endpoints: string[]) {
    super('endpoint_pending', 409, `endpoints whose current round was sent and has not finished: ${endpoints.join(', ')}`);
  }
}

export class NoEndpointsError extends TaskerError {
  constructor(type: string) {
    super('no_endpoints', 422, `no endpoints listed and none registered for task type '${type}'`);
  }
}

/**
 * A task listing endpoint names that never registered and were not added (`npm run endpoint -- add`):
 * most likely typos, whose queues nobody would ever read. Nothing was stored or declared.
 */
export class UnknownEndpointsError extends TaskerError {
  constructor(readonly names: readonly string[]) {
    super('unknown_endpoints', 422, `unknown endpoints (never registered, not added): ${names.join(', ')}; `
      + 'send "allow_unknown_endpoints": true to deliver to endpoints that will appear later');
  }
}

/** A task listing endpoints that registered, but not for its task type: their managers would never consume it. */
export class EndpointsNotServingError extends TaskerError {
  constructor(type: string, readonly names: readonly string[]) {
    super('endpoints_not_serving', 422, `endpoints that do not serve task type '${type}' (registered for other types only): ${names.join(', ')}; `
      + `add '${type}' to their manager.endpoints[].task_types (or --tasktype) and restart them, or send "allow_unknown_endpoints": true to deliver once they do`);
  }
}

/** A task addressed by a label selector that matches none of the live endpoints serving its type: nothing is stored. */
export class NoMatchingEndpointsError extends TaskerError {
  constructor(type: string, selector: string, live: number) {
    super('no_matching_endpoints', 422, live === 0
      ? `selector '${selector}' matches no endpoint: no endpoint of task type '${type}' is live (a heartbeat within api.endpoint_stale_after)`
      : `selector '${selector}' matches none of the ${live} live endpoint${live === 1 ? '' : 's'} of task type '${type}' (GET /endpoints shows their labels and facts)`);
  }
}

export class DatabaseUnavailableError extends TaskerError {
  constructor(options?: { cause?: unknown }) { super('database_unavailable', 503, 'the database is unavailable; retry later', options); }
}

/**
 * The standalone mode's in-process queues hold as many messages as `manager.in_process_backlog` allows:
 * nothing was stored; the client tries again after `retryAfter` seconds (the Retry-After header).
 */
export class BacklogFullError extends TaskerError {
  constructor(readonly retryAfter: number) {
    super('backlog_full', 503, `the backlog of tasks waiting for their endpoints is full; nothing was stored; retry after ${retryAfter} s`);
  }
}

export class BrokerUnavailableError extends TaskerError {
  constructor(message = 'the message broker is unavailable', options?: { cause?: unknown }) {
    super('broker_unavailable', 503, message, options);
  }
}

/** A message on a queue that is not a valid task; it is dead-lettered. */
export class InvalidMessageError extends TaskerError {
  constructor(message: string) { super('invalid_message', 400, message); }
}


/** No valid bearer token: none given, unknown, malformed or revoked. */
export class UnauthorizedError extends TaskerError {
  constructor(message = 'a valid bearer token is required (Authorization: Bearer <token>)') { super('unauthorized', 401, message); }
}

/** A valid token without the scope the route needs. */
export class ForbiddenError extends TaskerError {
  constructor(scope: string) { super('forbidden', 403, `this token lacks the scope '${scope}'`); }
}

/**
 * A writer tried a change of a task's status or an endpoint's state that the state table
 * (api/lifecycle/states.ts) does not allow: a defect, refused rather than stored.
 */
export class IllegalTransitionError extends TaskerError {
  constructor(field: string, from: string, to: string, event?: string) {
    super('illegal_transition', 500, `${field} ${from} → ${to}${event ? ` (${event})` : ''} is not an allowed transition`);
  }
}

/** A wait bounded by `withDeadline` (lib/retry.ts) that did not end in time. */
export class DeadlineError extends TaskerError {
  constructor(readonly what: string, readonly ms: number) {
    super('deadline_exceeded', 503, `${what}: no outcome within ${ms} ms`);
  }
}

/**
 * An event stream past `api.sse_max_streams` or `api.sse_max_streams_per_client`: refused so that streams
 * cannot hold every socket and buffer; the client tries again after `retryAfter` seconds (Retry-After).
 */
export class TooManyStreamsError extends TaskerError {
  constructor(message: string, readonly retryAfter: number) {
    super('too_many_streams', 503, `${message}; retry after ${retryAfter} s`);
  }
}

/** An Idempotency-Key already used with another request body (IETF Idempotency-Key draft: 422). */
export class IdempotencyKeyMismatchError extends TaskerError {
  constructor() {
    super('idempotency_key_mismatch', 422, 'this Idempotency-Key was used with a different request body; use a new key for a different request');
  }
}

/** Too many failed token checks from one address or for one key: nothing was checked; retry after `retryAfter` seconds. */
export class TooManyRequestsError extends TaskerError {
  constructor(readonly retryAfter: number) {
    super('too_many_requests', 429, `too many failed authentication attempts; retry after ${retryAfter} s`);
  }
}
