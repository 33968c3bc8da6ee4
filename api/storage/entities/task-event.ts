import { EntitySchema } from 'typeorm';

/** Every change of a task, in order: the history that GET …/events answers and streams. */
export const EVENT_KINDS = ['created', 'sent', 'received', 'finished', 'incomplete', 'done', 'retried', 'cancelled', 'missing', 'skipped', 'stopped', 'timed_out'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export interface TaskEvent {
  id: number;
  task_id: number;
  time: Date;
  kind: EventKind;
  /** What changed: for `received`, `finished` and `retried`, the endpoints concerned and their results. */
  detail: unknown;
  /** Who asked for it (an operator's token), where someone did. */
  actor: string | null;
}

export const TaskEventEntity = new EntitySchema<TaskEvent>({
  name: 'TaskEvent',
  tableName: 'task_event',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    task_id: { type: 'bigint' },
    time: { type: 'datetime', precision: 3 },
    kind: { type: String, length: 16 },
    detail: { type: 'simple-json', nullable: true },
    actor: { type: String, length: 64, nullable: true },
  },
});
