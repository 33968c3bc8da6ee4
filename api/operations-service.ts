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
    const sent = outcome.sends.length > 0 ? await this.publisher.send(outcome.task, outcome.sends) : await this.tasks.find(type, identifier);
    this.log.info({ taskId: task.id, identifier, endpoints: outcome.retried.length, replay: outcome.sends.length === 0, actor }, 'task retried');
    return { task: sent, retried: outcome.retried };
  }

  async cancel(type: string, identifier: string, actor: string | null): Promise<Task> {
    const task = await this.tasks.find(type, identifier);
    const outcome = await guardDb(() => this.operations.cancel(task, actor));
    if (Object.keys(outcome.rounds).length > 0) {
      // Managers that are not connected now ask for the cancelled tasks when they connect.
      await this.transport.publishControl({ kind: 'cancel', task_id: task.id, rounds: outcome.rounds }).catch((err: unknown) => {
        this.log.warn({ taskId: task.id, err }, 'cancel recorded, but the control message to the running endpoints was not sent');
      });
    }
    if (outcome.changed) this.log.info({ taskId: task.id, identifier, actor }, 'task cancelled');
    return outcome.task;
  }
}
