import { Type } from '@sinclair/typebox';
import { NotFoundError } from '../../lib/errors';
import { actorOf } from '../auth';
import type { ApiRoutes } from '../operation';
import type { ScheduleService } from '../schedule-service';
import { NoQuery, SCHEDULE_NAME_PATTERN, ScheduleBody, ScheduleList, ScheduleName, SchedulePatchBody } from '../schemas';
import type { Schedule } from '../storage/schedule-store';
import { answers } from './answers';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function scheduleView(s: Schedule): Record<string, unknown> {
  return {
    name: s.name, task_type: s.task_type, cron: s.cron, every: s.every, timezone: s.timezone, payload: s.payload, endpoints: s.endpoints, selector: s.selector,
    rollout: s.rollout, paused: s.paused, next_fire_time: iso(s.next_fire_time), last_fire_time: iso(s.last_fire_time),
    last_task_identifier: s.last_task_identifier, last_error: s.last_error, created_by: s.created_by,
    created_time: s.created_time.toISOString(), updated_time: s.updated_time.toISOString(),
  };
}

const PARAMS = { name: ScheduleName };
const ONE = { description: 'the schedule', schema: Type.Ref('Schedule') };

/** A name no schedule can have is unknown (404), like any other unknown name. */
function nameOf(params: Record<string, string>): string {
  if (!SCHEDULE_NAME_PATTERN.test(params.name)) throw new NotFoundError(`no schedule named '${params.name}'`);
  return params.name;
}

/**
 * `/schedules`: tasks created at cron times or fixed intervals. Reading needs `read`; pausing, resuming
 * and deleting (which only stop or restart what exists) `operate`; creating and changing a schedule, which
 * decides what tasks are sent with what payload for as long as it exists, `admin`.
 */
export function addScheduleRoutes(routes: ApiRoutes, service: ScheduleService): void {
  routes.add({
    id: 'listSchedules', method: 'get', path: '/schedules', tag: 'schedules', scope: 'read', query: NoQuery,
    summary: 'Every schedule, by name, with its next firing',
    answers: answers({ 200: { description: 'the schedules', schema: ScheduleList } }, [400]),
  }, async (ctx) => {
    ctx.body = { schedules: (await service.list()).map(scheduleView) };
  });

  routes.add({
    id: 'createSchedule', method: 'post', path: '/schedules', tag: 'schedules', scope: 'admin', query: NoQuery, body: ScheduleBody,
    summary: 'Create a schedule: a task of task_type at each time of `cron` (in `timezone`) or `every` interval',
    description: 'Each firing creates an ordinary task with identifier `<name>-<scheduled time in UTC>` (e.g. `nightly-20261124T013000Z`), '
      + 'once whatever the number of API instances. Firings missed while no API ran are caught up once: the first missed one.',
    answers: answers({ 201: { description: 'the schedule', schema: Type.Ref('Schedule') } }, [400, 409, 413, 415]),
  }, async (ctx, { body }) => {
    ctx.status = 201;
    ctx.body = scheduleView(await service.create(body, actorOf(ctx)));
  });

  routes.add({
    id: 'getSchedule', method: 'get', path: '/schedules/:name', tag: 'schedules', scope: 'read', params: PARAMS, query: NoQuery,
    summary: 'A schedule, with its next and last firing', answers: answers({ 200: ONE }, [400, 404]),
  }, async (ctx) => {
    ctx.body = scheduleView(await service.get(nameOf(ctx.params)));
  });

  routes.add({
    id: 'updateSchedule', method: 'patch', path: '/schedules/:name', tag: 'schedules', scope: 'admin', params: PARAMS, query: NoQuery,
    body: SchedulePatchBody,
    summary: 'Change a schedule: the fields given replace the stored ones (`cron` replaces `every` and the other way round)',
    answers: answers({ 200: ONE }, [400, 404, 413, 415]),
  }, async (ctx, { body }) => {
    ctx.body = scheduleView(await service.update(nameOf(ctx.params), body));
  });

  routes.add({
    id: 'deleteSchedule', method: 'delete', path: '/schedules/:name', tag: 'schedules', scope: 'operate', params: PARAMS, query: NoQuery,
    summary: 'Delete a schedule (the tasks it created stay)', answers: answers({ 200: { ...ONE, description: 'the deleted schedule' } }, [400, 404]),
  }, async (ctx) => {
    ctx.body = scheduleView(await service.delete(nameOf(ctx.params)));
  });

  for (const [action, paused] of [['pause', true], ['resume', false]] as const) {
    routes.add({
      id: `${action}Schedule`, method: 'post', path: `/schedules/:name/${action}`, tag: 'schedules', scope: 'operate', params: PARAMS, query: NoQuery,
      summary: paused ? 'Pause a schedule: it fires no more until resumed' : 'Resume a schedule: it fires from its next time after now (no catch-up of the pause)',
      answers: answers({ 200: ONE }, [400, 404]),
    }, async (ctx) => {
      ctx.body = scheduleView(await service.setPaused(nameOf(ctx.params), paused));
    });
  }
}
