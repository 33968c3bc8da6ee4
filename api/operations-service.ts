import type { Logger } from '../lib/logger';
import type { ServerTransport } from '../protocol/server-transport';
import type { Publisher } from './publisher';
import { guardDb } from './storage/database';
import type { Task } from './storage/rows';
import type { RetrySelector, TaskOperations } from './storage/operations';
import type { TaskService } from './task-service';

/** Retry and cancel: the changes in the database, then the sends and control messages they call for. */
export class OperationsService {
  constructor(
    private readonly tasks: TaskService,
    private readonly operations: TaskOperations,
    private readonly publisher: Publisher,
    private readonly transport: ServerTransport,
    private readonly log: Logger,
  ) {}

  async retry(type: string, identifier: string, selector: RetrySelector, key: string | null, actor: string | null): Promise<{ task: Task; retried: string[] }> {
    const task = await this.tasks.find(type, identifier);
    const outcome = await guardDb(() => this.operations.retry(task, selector, actor, key));
    // Before the new round goes out: a connected endpoint holding the old one never starts it; one that is
    // not connected learns it from the list it asks for when it connects.
    if (Object.keys(outcome.superseded).length > 0) await this.control(task.id, outcome.superseded, 'retry recorded');
    const sent = outcome.sends.length > 0 ? await this.publisher.send(outcome.task, outcome.sends) : await this.tasks.find(type, identifier);
    this.log.info({ taskId: task.id, identifier, endpoints: outcome.retried.length, replay: outcome.sends.length === 0, actor }, 'task retried');
    return { task: sent, retried: outcome.retried };
  }

  /** Tells the connected managers that these rounds must not run (and abort if they do). */
  private async control(taskId: number, rounds: Record<string, number>, what: string): Promise<void> {
    await this.transport.publishControl({ kind: 'cancel', task_id: taskId, rounds }).catch((err: unknown) => {
      this.log.warn({ taskId, err }, `${what}, but the control message to the connected endpoints was not sent`);
    });
  }

  async cancel(type: string, identifier: string, actor: string | null): Promise<Task> {
    const task = await this.tasks.find(type, identifier);
    const outcome = await guardDb(() => this.operations.cancel(task, actor));
    // Managers that are not connected now ask for the cancelled tasks when they connect.
    if (Object.keys(outcome.rounds).length > 0) await this.control(task.id, outcome.rounds, 'cancel recorded');
    if (outcome.changed) this.log.info({ taskId: task.id, identifier, actor }, 'task cancelled');
    return outcome.task;
  }
}
