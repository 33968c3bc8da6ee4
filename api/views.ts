import { ERRNR_ATTEMPTS_EXHAUSTED, ERRNR_DEADLINE_PASSED, ERRNR_HANDLER_TIMEOUT } from '../protocol/wire';
import type { Task, TaskResponse } from './storage/rows';
import type { EndpointState as ResponseState, ShownState } from './lifecycle/states';
import type { StoredEvent } from './storage/history';
import { ENDPOINT_STATE, shownState } from './lifecycle/states';
import { rolloutView } from './rollout';

/**
 * The JSON shapes of the API: the seed's field names and value types, plus additions (sent_time,
 * end_time, response counts per state, each endpoint's state).
 */

const S = ENDPOINT_STATE;
/** The order of the counts in a task's `responses` (that of the API since states were added one by one). */
const COUNTED: readonly ShownState[] = [S.PENDING, S.RUNNING, S.SUCCEEDED, S.FAILED, S.MISSING, S.CANCELLED, S.QUEUED, S.SKIPPED];

/** Counts per shown state, from the counts per stored state. */
export function stateCounts(task: Pick<Task, 'status'>, counts: ReadonlyMap<ResponseState, number>): Record<ShownState, number> {
  const shown = Object.fromEntries(COUNTED.map((s) => [s, 0])) as Record<ShownState, number>;
  for (const [state, n] of counts) {
    const as = shownState(state, task.status);
    if (as in shown) shown[as] += n;
  }
  return shown;
}

export function countRows(rows: readonly TaskResponse[]): Map<ResponseState, number> {
  const m = new Map<ResponseState, number>();
  for (const r of rows) m.set(r.state, (m.get(r.state) ?? 0) + 1);
  return m;
}

export function taskView(t: Task, counts: ReadonlyMap<ResponseState, number>): Record<string, unknown> {
  return {
    id: t.id,
    identifier: t.identifier,
    type: t.type,
    status: t.status,
    payload: t.payload,
    endpoints: t.expected_endpoints,
    selector: t.selector,
    start_time: t.start_time.toISOString(),
    sent_time: t.sent_time?.toISOString() ?? null,
    end_time: t.end_time?.toISOString() ?? null,
    timeout: t.timeout,
    deadline: t.deadline?.toISOString() ?? null,
    notify: t.notify,
    // `failed` is both a count of the original shape and a state: the same number.
    responses: { expected: t.expected_count, received: t.received_count, finished: t.finished_count, ...stateCounts(t, counts) },
    rollout: t.rollout ? rolloutView(t.rollout, t.expected_count, (s) => counts.get(s) ?? 0) : null,
  };
}

/** Why a failed response failed: its handler timed out, it was given up on after crashes, or it reported an error. */
function failure(r: TaskResponse): string | undefined {
  if (r.state !== ENDPOINT_STATE.FAILED) return undefined;
  if (r.errnr === ERRNR_HANDLER_TIMEOUT || r.errnr === ERRNR_DEADLINE_PASSED) return 'timed_out';
  if (r.errnr === ERRNR_ATTEMPTS_EXHAUSTED) return 'gave_up';
  return 'error';
}

export function responseView(r: TaskResponse, task: Pick<Task, 'status'>): Record<string, unknown> {
  const why = failure(r);
  return {
    id: r.id,
    task_id: r.task_id,
    endpoint: r.endpoint,
    state: shownState(r.state, task.status),
    ...(why ? { failure: why } : {}),
    round: r.round,
    status: r.status,
    errnr: r.errnr,
    errmsg: r.errmsg,
    payload: r.payload,
    attempts: r.attempts,
    start_time: r.start_time?.toISOString() ?? null,
    last_modified_time: r.last_modified_time.toISOString(),
  };
}

export function eventView(e: StoredEvent): Record<string, unknown> {
  const { detail, ...rest } = e;
  return detail === undefined ? rest : { ...rest, detail };
}
