import { IllegalTransitionError } from '../../lib/errors';

/**
 * The life of a task and of each of its endpoints, in one place: the task statuses, the endpoint
 * states, the history events, which transitions are allowed (and the event each writes), the state the
 * API derives from a stored one, and the SQL fragments built from them. Every writer and reader of the
 * server side uses these constants; a lint rule forbids the words as literals anywhere else (api/,
 * scripts/), so a new state or a renamed one is a change of this file only.
 */

/** A task's status (`task.status`). */
export const TASK_STATUS = Object.freeze({
  /** Stored, the broker has not confirmed its send (yet, or again after a retry). */
  CREATED: 'CREATED',
  /** The broker confirmed its send. */
  SENT: 'SENT',
  /** Every expected endpoint finished (some may have failed). */
  DONE: 'DONE',
  /** Some expected endpoint was not heard from in time; a late response may still make it DONE. */
  INCOMPLETE: 'INCOMPLETE',
  /** An operator cancelled it. */
  CANCELLED: 'CANCELLED',
  /** A rollout whose error budget ran out, once the endpoints it had sent the task to were done. */
  STOPPED: 'STOPPED',
} as const);
export type TaskStatus = (typeof TASK_STATUS)[keyof typeof TASK_STATUS];
export const TASK_STATUSES: readonly TaskStatus[] = Object.freeze(Object.values(TASK_STATUS));
/** A task in one of these has ended; a late response may still turn INCOMPLETE into DONE. */
export const ENDED_STATUSES: readonly TaskStatus[] = Object.freeze([TASK_STATUS.DONE, TASK_STATUS.INCOMPLETE, TASK_STATUS.CANCELLED, TASK_STATUS.STOPPED]);
/** A task in one of these has not ended. */
export const LIVE_STATUSES: readonly TaskStatus[] = Object.freeze([TASK_STATUS.CREATED, TASK_STATUS.SENT]);

/**
 * An expected endpoint's part of a task (`task_response.state`), the one vocabulary of the API. A
 * rollout adds `queued`, `skipped` and a stored `missing`; any other task's pending endpoint is shown
 * `missing` once the task is INCOMPLETE (see `shownState`).
 */
export const ENDPOINT_STATE = Object.freeze({
  /** A rollout's endpoint not sent the task yet: waiting for a slot. */
  QUEUED: 'queued',
  /** Sent (or to be sent), nothing heard. */
  PENDING: 'pending',
  /** The endpoint's receipt came: its handler runs. */
  RUNNING: 'running',
  /** Finished with errnr 0. */
  SUCCEEDED: 'succeeded',
  /** Finished with an error. */
  FAILED: 'failed',
  /** A rollout's endpoint not heard from within `wait_for_endpoints_timeout` of its send. */
  MISSING: 'missing',
  /** A rollout's endpoint never sent the task: the rollout stopped, or was cancelled, before its turn. */
  SKIPPED: 'skipped',
  /** The task was cancelled before the endpoint was heard from. */
  CANCELLED: 'cancelled',
} as const);
export type EndpointState = (typeof ENDPOINT_STATE)[keyof typeof ENDPOINT_STATE];
/** The stored states, in the order the API lists them. */
export const ENDPOINT_STATES: readonly EndpointState[] = Object.freeze(Object.values(ENDPOINT_STATE));
/** What the API shows of an endpoint: a stored state, `missing` also for a pending endpoint of an INCOMPLETE task. */
export type ShownState = EndpointState;
export const SHOWN_STATES: readonly ShownState[] = ENDPOINT_STATES;

/** `task_response.status`, the original's values: null (not heard from), received, finished. */
export const RESPONSE_STATUS = Object.freeze({ RECEIVED: 0, FINISHED: 1 } as const);

/** The kinds of the history's events (`task_event.kind`): every change of a task, in order. */
export const EVENT = Object.freeze({
  CREATED: 'created',
  SENT: 'sent',
  RECEIVED: 'received',
  FINISHED: 'finished',
  INCOMPLETE: 'incomplete',
  DONE: 'done',
  RETRIED: 'retried',
  CANCELLED: 'cancelled',
  MISSING: 'missing',
  SKIPPED: 'skipped',
  STOPPED: 'stopped',
  /** The task's execution deadline passed while the endpoint ran it. */
  TIMED_OUT: 'timed_out',
  /** The endpoint was removed (by an operator, or forgotten after its silence) before it finished. */
  REMOVED: 'removed',
} as const);
export type EventKind = (typeof EVENT)[keyof typeof EVENT];
export const EVENT_KINDS: readonly EventKind[] = Object.freeze(Object.values(EVENT));

/**
 * The webhook events (`POST /webhooks` `events`), each raised by one kind of history event: the task's
 * status changes, and `response.failed` by a `finished` (or `timed_out`) event of an endpoint that failed.
 */
export const WEBHOOK_EVENT = Object.freeze({
  TASK_CREATED: 'task.created',
  TASK_DONE: 'task.done',
  TASK_INCOMPLETE: 'task.incomplete',
  TASK_STOPPED: 'task.stopped',
  TASK_CANCELLED: 'task.cancelled',
  RESPONSE_FAILED: 'response.failed',
  /** Not a task's: an endpoint silent for api.endpoint_stale_after (see WebhookStore.announceStale). */
  ENDPOINT_STALE: 'endpoint.stale',
} as const);
export type WebhookEvent = (typeof WEBHOOK_EVENT)[keyof typeof WEBHOOK_EVENT];
export const WEBHOOK_EVENTS: readonly WebhookEvent[] = Object.freeze(Object.values(WEBHOOK_EVENT));

/** The task status each task.* webhook event reports. */
export const WEBHOOK_EVENT_STATUS: Readonly<Partial<Record<WebhookEvent, TaskStatus>>> = Object.freeze({
  [WEBHOOK_EVENT.TASK_CREATED]: TASK_STATUS.CREATED, [WEBHOOK_EVENT.TASK_DONE]: TASK_STATUS.DONE,
  [WEBHOOK_EVENT.TASK_INCOMPLETE]: TASK_STATUS.INCOMPLETE, [WEBHOOK_EVENT.TASK_STOPPED]: TASK_STATUS.STOPPED,
  [WEBHOOK_EVENT.TASK_CANCELLED]: TASK_STATUS.CANCELLED,
});

/**
 * The webhook event a history event raises (null: none). `endpoints`: the endpoints an endpoint's event
 * concerns (a task's own change has none); `response.failed` when one of them has an errnr other than 0.
 */
export function webhookEventOf(kind: EventKind, endpoints?: readonly { errnr?: number }[]): WebhookEvent | null {
  if (endpoints !== undefined && kind !== EVENT.FINISHED && kind !== EVENT.TIMED_OUT) return null;
  switch (kind) {
    case EVENT.CREATED: return WEBHOOK_EVENT.TASK_CREATED;
    case EVENT.DONE: return WEBHOOK_EVENT.TASK_DONE;
    case EVENT.INCOMPLETE: return WEBHOOK_EVENT.TASK_INCOMPLETE;
    case EVENT.STOPPED: return WEBHOOK_EVENT.TASK_STOPPED;
    case EVENT.CANCELLED: return WEBHOOK_EVENT.TASK_CANCELLED;
    case EVENT.FINISHED:
    case EVENT.TIMED_OUT:
      return endpoints?.some((e) => e.errnr !== undefined && e.errnr !== 0) ? WEBHOOK_EVENT.RESPONSE_FAILED : null;
    default: return null;
  }
}

/** A webhook delivery's status (`webhook_delivery.status`). */
export const DELIVERY_STATUS = Object.freeze({
  /** Not delivered yet: tried at `next_time`. */
  PENDING: 'pending',
  /** A 2xx came back. */
  DELIVERED: 'delivered',
  /** Not delivered within api.webhooks.retry_for, or its subscription was disabled: no more tries. */
  FAILED: 'failed',
} as const);
export type DeliveryStatus = (typeof DELIVERY_STATUS)[keyof typeof DELIVERY_STATUS];
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = Object.freeze(Object.values(DELIVERY_STATUS));

/** One allowed change: `from` null is the row's creation. `by` says who makes it (for the docs). */
export interface Transition<S extends string> {
  readonly from: S | null;
  readonly to: S;
  readonly event: EventKind;
  readonly by: string;
}

const T = TASK_STATUS;
const E = ENDPOINT_STATE;

function each<S extends string>(froms: readonly (S | null)[], tos: readonly S[], event: EventKind, by: string): Transition<S>[] {
  return froms.flatMap((from) => tos.map((to) => ({ from, to, event, by })));
}

/** Every change of a task's status that the server side makes. */
export const TASK_TRANSITIONS: readonly Transition<TaskStatus>[] = Object.freeze([
  ...each([null], [T.CREATED], EVENT.CREATED, 'POST stores the task'),
  ...each([T.CREATED], [T.SENT], EVENT.SENT, 'the broker confirms a send (a rollout: its first response)'),
  ...each([T.CREATED, T.SENT, T.INCOMPLETE], [T.DONE], EVENT.DONE, 'the last expected endpoint finishes'),
  ...each([T.SENT], [T.INCOMPLETE], EVENT.INCOMPLETE, 'a sweep: some endpoint not heard from in time, or the execution deadline passed'),
  ...each([T.CREATED], [T.INCOMPLETE], EVENT.INCOMPLETE, 'a rollout ends with missing endpoints, or the deadline of a task whose send is known passed'),
  ...each([T.CREATED, T.SENT], [T.STOPPED], EVENT.STOPPED, 'a rollout past its error budget ends'),
  ...each([T.CREATED, T.SENT, T.INCOMPLETE, T.STOPPED], [T.CANCELLED], EVENT.CANCELLED, 'an operator cancels'),
  ...each(TASK_STATUSES, [T.CREATED], EVENT.RETRIED, 'an operator retries (sent again)'),
  ...each([T.SENT, T.DONE, T.INCOMPLETE, T.CANCELLED, T.STOPPED], [T.SENT], EVENT.RETRIED, 'an operator retries a rollout (queued again)'),
]);

/** Every change of an endpoint's state that the server side makes. */
export const ENDPOINT_TRANSITIONS: readonly Transition<EndpointState>[] = Object.freeze([
  ...each([null], [E.PENDING], EVENT.CREATED, 'the task is stored'),
  ...each([null], [E.QUEUED], EVENT.CREATED, 'a rollout is stored (beyond its first batch)'),
  ...each([E.QUEUED], [E.PENDING], EVENT.SENT, 'a rollout gives it a slot'),
  ...each([E.QUEUED], [E.SKIPPED], EVENT.SKIPPED, 'a rollout past its error budget'),
  ...each([E.QUEUED], [E.SKIPPED], EVENT.CANCELLED, 'an operator cancels a rollout'),
  ...each([E.PENDING, E.MISSING, E.CANCELLED], [E.RUNNING], EVENT.RECEIVED, 'the endpoint\'s receipt (a late one kept)'),
  ...each([E.PENDING, E.RUNNING, E.MISSING, E.CANCELLED], [E.SUCCEEDED, E.FAILED], EVENT.FINISHED, 'the endpoint\'s result, or its attempts exhausted'),
  ...each([E.FAILED], [E.SUCCEEDED, E.FAILED], EVENT.FINISHED, 'the result of a run the execution deadline failed, arriving late'),
  ...each([E.PENDING], [E.MISSING], EVENT.MISSING, 'a rollout\'s endpoint not heard from in time, or the execution deadline passed'),
  ...each([E.RUNNING], [E.FAILED], EVENT.TIMED_OUT, 'the execution deadline passed while it ran (errnr 127, told to abort)'),
  ...each([E.PENDING, E.MISSING], [E.CANCELLED], EVENT.CANCELLED, 'an operator cancels'),
  ...each([E.QUEUED, E.PENDING, E.MISSING, E.RUNNING], [E.CANCELLED], EVENT.REMOVED, 'the endpoint is removed (running: only when forced)'),
  ...each([E.QUEUED, E.PENDING, E.SUCCEEDED, E.FAILED, E.MISSING, E.SKIPPED, E.CANCELLED], [E.PENDING, E.QUEUED], EVENT.RETRIED,
    'an operator retries (a new round; queued in a rollout)'),
]);

function isTaskStatus(s: string): s is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(s);
}

function tableOf(state: string): readonly Transition<string>[] {
  return isTaskStatus(state) ? TASK_TRANSITIONS : ENDPOINT_TRANSITIONS;
}

/** Whether the table allows `from` → `to` (by `event`, if given). Task statuses and endpoint states never mix. */
export function allows(from: TaskStatus | null, to: TaskStatus, event?: EventKind): boolean;
export function allows(from: EndpointState | null, to: EndpointState, event?: EventKind): boolean;
export function allows(from: string | null, to: string, event?: EventKind): boolean {
  return tableOf(to).some((t) => t.from === from && t.to === to && (event === undefined || t.event === event));
}

/**
 * Moves a task (its `status`) or a response row (its `state`) to `to`, or throws IllegalTransitionError
 * when the table does not allow it: a writer that tries a change nobody designed fails loudly rather
 * than leaving a task in a state no sweep knows. Answers the event the change records.
 */
export function enter(task: { status: TaskStatus }, to: TaskStatus, event?: EventKind): EventKind;
export function enter(row: { state: EndpointState }, to: EndpointState, event?: EventKind): EventKind;
export function enter(target: { status?: unknown; state?: string }, to: string, event?: EventKind): EventKind {
  // A response row has a `status` too (the original's 0/1): its state is `state`; a task has no `state`.
  const field = isTaskStatus(to) ? 'status' : 'state';
  if (!(field in target)) throw new IllegalTransitionError(field, 'absent', to, event);
  const from = target[field] ?? null;
  const found = tableOf(to).find((t) => t.from === from && t.to === to && (event === undefined || t.event === event));
  if (!found) throw new IllegalTransitionError(field, String(from), to, event);
  target[field] = to;
  return found.event;
}

/**
 * For a statement that moves many rows at once: the quoted `to`, once the table allows each of `froms`
 * → `to` (by `event`, if given); otherwise IllegalTransitionError, before anything is written.
 */
export function sqlEnter(froms: readonly TaskStatus[], to: TaskStatus, event?: EventKind): string;
export function sqlEnter(froms: readonly EndpointState[], to: EndpointState, event?: EventKind): string;
export function sqlEnter(froms: readonly string[], to: string, event?: EventKind): string {
  for (const from of froms) {
    if (!tableOf(to).some((t) => t.from === from && t.to === to && (event === undefined || t.event === event))) {
      throw new IllegalTransitionError(isTaskStatus(to) ? 'status' : 'state', from, to, event);
    }
  }
  return sqlWord(to as TaskStatus);
}

/** The events that end a task (a late response may still follow INCOMPLETE's with DONE's). */
export const ENDING_EVENTS: readonly EventKind[] = Object.freeze(
  [...new Set(TASK_TRANSITIONS.filter((t) => ENDED_STATUSES.includes(t.to)).map((t) => t.event))]);

/** The statuses of a task whose pending endpoints are shown `missing`. */
export const MISSING_WHEN: readonly TaskStatus[] = Object.freeze([TASK_STATUS.INCOMPLETE]);

/** The derived state: what the API shows of a stored endpoint state, given its task's status. */
export function shownState(state: EndpointState, taskStatus: TaskStatus): ShownState {
  return state === E.PENDING && MISSING_WHEN.includes(taskStatus) ? E.MISSING : state;
}

/**
 * The stored forms of a shown state: each a stored row state and the task statuses it is shown so with
 * (null: any). The inverse of `shownState`, for queries.
 */
export function storedForms(shown: ShownState): { state: EndpointState; statuses: readonly TaskStatus[] | null }[] {
  if (shown === E.MISSING) return [{ state: E.PENDING, statuses: MISSING_WHEN }, { state: E.MISSING, statuses: null }];
  if (shown === E.PENDING) return [{ state: E.PENDING, statuses: LIVE_STATUSES }];
  return [{ state: shown, statuses: null }];
}

/** The stored states of a task in status `taskStatus` that are shown as `shown`. */
export function storedStatesFor(shown: ShownState, taskStatus: TaskStatus): EndpointState[] {
  return storedForms(shown).filter((f) => f.statuses === null || f.statuses.includes(taskStatus)).map((f) => f.state);
}

// ---- SQL fragments: quoted from the constants above, never from input.

const WORD = /^[A-Za-z_]+$/;

/** A quoted SQL string literal of a state word (only words of this module: letters and underscores). */
export function sqlWord(word: TaskStatus | EndpointState | EventKind | DeliveryStatus): string {
  if (!WORD.test(word)) throw new Error(`not a state word: ${word}`);
  return `'${word}'`;
}

/** `('A', 'B')`: a quoted IN list of state words. */
export function sqlIn(words: readonly (TaskStatus | EndpointState | EventKind)[]): string {
  if (words.length === 0) throw new Error('an empty IN list');
  return `(${words.map(sqlWord).join(', ')})`;
}

/**
 * The SQL condition that a row (alias `row`) of a task (alias `task`) is shown in state `shown`: the
 * derived rule of `shownState` in SQL.
 */
export function sqlShownIs(shown: ShownState, row = 'r', task = 't'): string {
  const forms = storedForms(shown).map((f) => f.statuses === null
    ? `${row}.state = ${sqlWord(f.state)}`
    : `${row}.state = ${sqlWord(f.state)} AND ${task}.status IN ${sqlIn(f.statuses)}`);
  return forms.length === 1 ? forms[0] : `(${forms.join(' OR ')})`;
}

/** The SQL expression of a row's shown state (the derived rule of `shownState` in SQL). */
export function sqlShownState(row = 'r', task = 't'): string {
  return `CASE WHEN ${row}.state = ${sqlWord(E.PENDING)} AND ${task}.status IN ${sqlIn(MISSING_WHEN)} THEN ${sqlWord(E.MISSING)} ELSE ${row}.state END`;
}
