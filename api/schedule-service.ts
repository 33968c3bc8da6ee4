import { BacklogFullError, DatabaseUnavailableError, InvalidRequestError, NotFoundError, TaskerError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { parseSelector } from '../protocol/label-selector';
import type { PayloadSchemas } from './payload-schemas';
import type { RolloutRequest } from './rollout';
import { canonicalTimezone, checkCron, firingIdentifier, nextAfter, parseEvery, type Timing } from './schedule-timing';
import type { ScheduleBody, SchedulePatchBody } from './schemas';
import { guardDb, isTransientDbError } from './storage/database';
import type { Fired, Schedule, ScheduleStore } from './storage/schedule-store';
import { toTaskRequest, type TaskRequest } from './task-request';
import type { TaskService } from './task-service';

export interface ScheduleServiceDeps {
  store: ScheduleStore;
  tasks: TaskService;
  taskTypes: readonly string[];
  /** Command types' payload schemas: a schedule's payload must pass its type's. */
  payloads?: PayloadSchemas;
  logger: Logger;
  /** The clock (tests fix it). */
  now?: () => Date;
}

/** Schedules fired in one run of the job before it looks again (a full batch is followed by another). */
const FIRE_BATCH = 100;

export function timingOf(s: Pick<Schedule, 'cron' | 'every' | 'timezone' | 'anchor_time'>): Timing {
  if (s.cron !== null) return { kind: 'cron', cron: s.cron, timezone: s.timezone };
  return { kind: 'every', seconds: parseEvery(s.every ?? ''), anchor: s.anchor_time };
}

/** A schedule's selector checked when it is given (a 400 `bad_selector` then, not a failed firing later). */
function checkSelector(selector: string | null, endpoints: readonly string[] | null): string | null {
  if (selector === null) return null;
  if (endpoints) throw new InvalidRequestError('give either endpoints or selector, not both');
  parseSelector(selector);
  return selector;
}

const wholeSecond = (d: Date): Date => new Date(Math.floor(d.getTime() / 1000) * 1000);

/**
 * Schedules: their definitions (create, read, change, pause, resume, delete) and their firing.
 *
 * A firing creates an ordinary task whose identifier is `<name>-<scheduled time in UTC>`: every API
 * instance computes the same one, so a firing that two instances both handle creates one task (the
 * task's identifier is idempotent), and a firing retried after a crash creates no second one. After a
 * firing, the schedule's next firing is its first scheduled time after *now*: scheduled times missed
 * while no API ran are not created one by one; the first of them fires once when an API is back (the
 * catch-up), and the schedule goes on from the present.
 */
export class ScheduleService {
  private readonly now: () => Date;

  constructor(private readonly deps: ScheduleServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async create(body: ScheduleBody, actor: string | null): Promise<Schedule> {
    const now = this.now();
    this.checkTaskType(body.task_type);
    if (body.cron !== undefined && body.every !== undefined) throw new InvalidRequestError('cron, every: give one of them, not both');
    if (body.cron === undefined && body.every === undefined) throw new InvalidRequestError('cron or every is required');
    const timezone = canonicalTimezone(body.timezone ?? 'UTC');
    const endpoints = body.endpoints?.length ? body.endpoints : null;
    const selector = checkSelector(body.selector ?? null, endpoints);
    const draft: Schedule = {
      id: 0, name: body.name, task_type: body.task_type, cron: body.cron ?? null, every: body.every ?? null, timezone,
      payload: this.checkPayload(body.payload), endpoints, selector, rollout: body.rollout ?? null,
      paused: body.paused ?? false, anchor_time: wholeSecond(now), next_fire_time: null, last_fire_time: null, last_task_identifier: null,
      last_error: null, created_by: actor, created_time: now, updated_time: now,
    };
    this.deps.payloads?.check(draft.task_type, draft.payload);
    draft.next_fire_time = draft.paused ? null : this.firstAfter(draft, now);
    return guardDb(() => this.deps.store.create(draft));
  }

  list(): Promise<Schedule[]> {
    return guardDb(() => this.deps.store.list());
  }

  async get(name: string): Promise<Schedule> {
    const s = await guardDb(() => this.deps.store.find(name));
    if (!s) throw new NotFoundError(`no schedule named '${name}'`);
    return s;
  }

  /**
   * Changes what is given. A new cron, interval or time zone, or a resume, sets the next firing from now
   * (an interval then counts from now): firings missed while paused are not caught up.
   */
  async update(name: string, patch: SchedulePatchBody): Promise<Schedule> {
    const now = this.now();
    if (patch.cron !== undefined && patch.every !== undefined) throw new InvalidRequestError('cron, every: give one of them, not both');
    if (patch.task_type !== undefined) this.checkTaskType(patch.task_type);
    const timezone = patch.timezone === undefined ? undefined : canonicalTimezone(patch.timezone);
    const payload = patch.payload === undefined ? undefined : this.checkPayload(patch.payload);
    const s = await this.get(name);
    const retimed = patch.cron !== undefined || patch.every !== undefined || (timezone !== undefined && timezone !== s.timezone);
    const resumed = patch.paused === false && s.paused;
    if (patch.cron !== undefined) Object.assign(s, { cron: patch.cron, every: null });
    if (patch.every !== undefined) Object.assign(s, { every: patch.every, cron: null, anchor_time: wholeSecond(now) });
    if (timezone !== undefined) s.timezone = timezone;
    if (patch.task_type !== undefined) s.task_type = patch.task_type;
    if (payload !== undefined) s.payload = payload;
    // Names and a selector exclude each other: giving one replaces the other.
    if (patch.endpoints !== undefined && patch.selector !== undefined) checkSelector(patch.selector, patch.endpoints?.length ? patch.endpoints : null);
    if (patch.endpoints !== undefined) s.endpoints = patch.endpoints?.length ? patch.endpoints : null;
    if (patch.endpoints?.length) s.selector = null;
    if (patch.selector !== undefined) s.selector = checkSelector(patch.selector, null);
    if (patch.selector) s.endpoints = null;
    if (patch.rollout !== undefined) s.rollout = patch.rollout;
    if (patch.paused !== undefined) s.paused = patch.paused;
    if (patch.task_type !== undefined || payload !== undefined) this.deps.payloads?.check(s.task_type, s.payload);
    if (s.paused) s.next_fire_time = null;
    else if (retimed || resumed) s.next_fire_time = this.firstAfter(s, now);
    if (!(await guardDb(() => this.deps.store.update(s, now)))) throw new NotFoundError(`no schedule named '${name}'`);
    return this.get(name);
  }

  setPaused(name: string, paused: boolean): Promise<Schedule> {
    return this.update(name, { paused });
  }

  async delete(name: string): Promise<Schedule> {
    const s = await this.get(name);
    if (!(await guardDb(() => this.deps.store.delete(s.id)))) throw new NotFoundError(`no schedule named '${name}'`);
    return s;
  }

  /** Fires every schedule that is due; answers how many fired. Safe on any number of API instances at once. */
  async fireDue(): Promise<number> {
    let total = 0;
    for (;;) {
      const now = this.now();
      const n = await this.deps.store.fireDue(now, FIRE_BATCH, (s) => this.fire(s, now));
      total += n;
      if (n < FIRE_BATCH) return total;
    }
  }

  private async fire(s: Schedule, now: Date): Promise<Fired> {
    const scheduled = s.next_fire_time as Date;
    const identifier = firingIdentifier(s.name, scheduled);
    let error: string | null = null;
    try {
      // Resolved at each firing: the task goes to the endpoints that match then.
      const selector = s.selector === null ? null : { text: s.selector, parsed: parseSelector(s.selector) };
      const req: TaskRequest = { identifier, payload: s.payload, endpoints: s.endpoints, selector, rollout: s.rollout as RolloutRequest | null, timeout: null };
      await this.deps.tasks.create(s.task_type, req, `schedule:${s.name}`);
    } catch (err) {
      // The database gone, or the standalone backlog full: the schedule stays due and fires when it can.
      if (err instanceof DatabaseUnavailableError || err instanceof BacklogFullError || isTransientDbError(err)) throw err;
      if (err instanceof TaskerError) {
        error = `${err.code}: ${err.message}`;
      } else {
        this.deps.logger.error({ err, schedule: s.name }, 'a schedule\'s firing failed');
        error = 'internal error (see the API\'s log)';
      }
    }
    let next: Date | null = null;
    try {
      next = nextAfter(timingOf(s), new Date(Math.max(now.getTime(), scheduled.getTime())));
    } catch (err) {
      error = `cannot compute the next firing: ${(err as Error).message}`;
    }
    return { id: s.id, scheduled, next, taskIdentifier: error === null ? identifier : null, error };
  }

  /** The first firing after `after` of a timing a client gave: a 400 naming the field when it has none. */
  private firstAfter(s: Pick<Schedule, 'cron' | 'every' | 'timezone' | 'anchor_time'>, after: Date): Date | null {
    if (s.cron !== null) checkCron(s.cron, s.timezone, after);
    return nextAfter(timingOf(s), after);
  }

  private checkTaskType(type: string): void {
    if (!this.deps.taskTypes.includes(type)) {
      throw new InvalidRequestError(`task_type: unknown task type '${type}'; configured: ${this.deps.taskTypes.join(', ')}`);
    }
  }

  private checkPayload(payload: unknown): unknown {
    return toTaskRequest({ identifier: 'schedule', payload }).payload;
  }
}
