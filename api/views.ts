import type { Task } from './storage/entities/task';
import type { TaskResponse } from './storage/entities/task-response';

/**
 * The JSON shapes of the API: the seed's field names and value types, plus a few additions
 * (sent_time, end_time and response counts).
 */
export function taskView(t: Task): Record<string, unknown> {
  return {
    id: t.id,
    identifier: t.identifier,
    type: t.type,
    status: t.status,
    payload: t.payload,
    endpoints: t.expected_endpoints,
    start_time: t.start_time.toISOString(),
    sent_time: t.sent_time?.toISOString() ?? null,
    end_time: t.end_time?.toISOString() ?? null,
    responses: { expected: t.expected_count, received: t.received_count, finished: t.finished_count, failed: t.failed_count },
  };
}

export function responseView(r: TaskResponse): Record<string, unknown> {
  return {
    id: r.id,
    task_id: r.task_id,
    endpoint: r.endpoint,
    status: r.status,
    errnr: r.errnr,
    errmsg: r.errmsg,
    payload: r.payload,
    attempts: r.attempts,
    start_time: r.start_time.toISOString(),
    last_modified_time: r.last_modified_time.toISOString(),
  };
}
