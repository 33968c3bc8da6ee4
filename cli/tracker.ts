import type { EndpointState, Rollout, Task, TaskEvent, TaskStatus, TaskWithResponses } from './types';
import { ENDED, ENDPOINT_STATES } from './types';

/** What the CLI knows of one expected endpoint. */
export interface EndpointView {
  endpoint: string;
  /** The stored state: `missing` of a task that is not a rollout is a pending endpoint of an INCOMPLETE task (see shown()). */
  state: EndpointState;
  round: number;
  attempt: number;
  errnr: number | null;
  errmsg: string | null;
  /** The result's payload as the task was read (events do not carry it); undefined when not read. */
  payload?: unknown;
  /** Sequence number of the last change, so that a view can show what changed most recently. */
  changed: number;
}

interface EndpointChange {
  endpoint: string;
  round?: number;
  attempt?: number;
  errnr?: number;
  errmsg?: string | null;
}

/**
 * A task's state as the CLI follows it: built from the task as GET answers it, or from its creation, then
 * moved on by the events of its history in id order, the way the server side changes it. Pure: the live
 * view and the tests feed it.
 */
export class TaskTracker {
  readonly type: string;
  readonly identifier: string;
  status: TaskStatus;
  readonly endpoints = new Map<string, EndpointView>();
  /** The id of the last event applied: the stream resumes after it. */
  lastEventId = 0;
  /** A rolling send's numbers (as the task was read; its progress is counted from the endpoints). */
  readonly rollout: Rollout | null;
  /** The task's execution timeout and deadline as it was read (absent from APIs that predate them). */
  readonly timeout: number | null;
  deadline: string | null;
  private seq = 0;

  constructor(task: Task, responses?: TaskWithResponses['taskResponseList']) {
    this.type = task.type;
    this.identifier = task.identifier;
    this.status = task.status;
    this.rollout = task.rollout ?? null;
    this.timeout = task.timeout ?? null;
    this.deadline = task.deadline ?? null;
    // A rollout sends to its first batch; the others wait for a slot.
    task.endpoints.forEach((name, i) => this.endpoints.set(name, {
      endpoint: name, state: this.rollout && i >= this.rollout.batch_size ? 'queued' : 'pending', round: 0, attempt: 0, errnr: null, errmsg: null, changed: 0,
    }));
    for (const r of responses ?? []) {
      const state = r.state === 'missing' && !this.rollout ? 'pending' : r.state;
      this.endpoints.set(r.endpoint, {
        endpoint: r.endpoint, state, round: r.round, attempt: r.attempts, errnr: r.status === 1 || r.state === 'failed' ? r.errnr : null, errmsg: r.errmsg, payload: r.payload, changed: 0,
      });
    }
  }

  get ended(): boolean {
    return ENDED.includes(this.status);
  }

  /** What an endpoint is shown as. */
  shown(e: EndpointView): EndpointState {
    return e.state === 'pending' && this.status === 'INCOMPLETE' ? 'missing' : e.state;
  }

  counts(): Record<EndpointState, number> & { expected: number; finished: number } {
    const c = Object.fromEntries(ENDPOINT_STATES.map((s) => [s, 0])) as Record<EndpointState, number>;
    for (const e of this.endpoints.values()) c[this.shown(e)]++;
    return { ...c, expected: this.endpoints.size, finished: c.succeeded + c.failed };
  }

  /**
   * Applies one event of the task's history; returns the endpoints it changed (for plain progress lines).
   * Events at or before the last one applied are ignored, so a resumed stream may repeat some.
   */
  apply(event: TaskEvent): EndpointView[] {
    if (event.id <= this.lastEventId) return [];
    this.lastEventId = event.id;
    const detail = event.detail ?? {};
    const changes = Array.isArray(detail.endpoints) ? (detail.endpoints as EndpointChange[]) : [];
    const changed: EndpointView[] = [];
    const touch = (e: EndpointView, patch: Partial<EndpointView>): void => {
      Object.assign(e, patch, { changed: ++this.seq });
      changed.push(e);
    };
    switch (event.kind) {
      case 'sent':
        this.status = 'SENT';
        // A rollout's batch names its endpoints.
        for (const name of Array.isArray(detail.endpoints) ? (detail.endpoints as string[]) : []) {
          const e = this.endpoints.get(name);
          if (e && e.state === 'queued') touch(e, { state: 'pending' });
        }
        break;
      case 'missing':
        for (const c of changes) {
          const e = this.endpoints.get(c.endpoint);
          if (e && e.state === 'pending') touch(e, { state: 'missing' });
        }
        break;
      case 'skipped':
        for (const e of this.endpoints.values()) if (e.state === 'queued') touch(e, { state: 'skipped' });
        break;
      case 'stopped':
        this.status = 'STOPPED';
        break;
      case 'received':
      case 'finished':
        for (const c of changes) {
          const e = this.endpoints.get(c.endpoint);
          // A result of an earlier round (before a retry) no longer counts; neither does a receipt after the result.
          if (!e || (c.round ?? 0) < e.round) continue;
          if (event.kind === 'received') {
            if (e.state === 'succeeded' || e.state === 'failed') continue;
            touch(e, { state: 'running', attempt: c.attempt ?? e.attempt });
          } else {
            const errnr = c.errnr ?? 0;
            touch(e, { state: errnr === 0 ? 'succeeded' : 'failed', attempt: c.attempt ?? e.attempt, errnr, errmsg: c.errmsg ?? null });
          }
        }
        break;
      case 'retried':
        // A rollout's retried endpoints wait for a slot; the task is sent batch by batch, so stays SENT.
        this.status = this.rollout ? (this.status === 'CREATED' ? 'CREATED' : 'SENT') : 'CREATED';
        for (const c of changes) {
          const e = this.endpoints.get(c.endpoint);
          if (e) touch(e, { state: this.rollout ? 'queued' : 'pending', round: c.round ?? e.round + 1, attempt: 0, errnr: null, errmsg: null });
        }
        break;
      case 'timed_out':
        // The execution deadline passed while these ran: failed, told to abort.
        for (const c of changes) {
          const e = this.endpoints.get(c.endpoint);
          if (e && (c.round ?? 0) >= e.round && e.state === 'running') touch(e, { state: 'failed', errnr: c.errnr ?? null, errmsg: c.errmsg ?? 'timed_out' });
        }
        break;
      case 'incomplete':
        this.status = 'INCOMPLETE';
        for (const e of this.endpoints.values()) if (e.state === 'pending') changed.push(e);
        break;
      case 'done':
        this.status = 'DONE';
        break;
      case 'cancelled':
        this.status = 'CANCELLED';
        for (const e of this.endpoints.values()) {
          if (e.state === 'pending' || e.state === 'missing') touch(e, { state: 'cancelled' });
          else if (e.state === 'queued') touch(e, { state: 'skipped' });
        }
        break;
    }
    return changed;
  }
}
