import { Batcher } from '../lib/batcher';
import { BrokerUnavailableError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { PublishTaskOptions, ServerTransport } from '../protocol/server-transport';
import type { TaskMessage } from '../protocol/wire';
import type { Task } from './storage/entities/task';
import type { TaskStore } from './storage/task-store';

const RESEND_BATCH = 200;

export function toMessage(task: Task): TaskMessage {
  return {
    id: task.id,
    identifier: task.identifier,
    type: task.type,
    payload: task.payload,
    endpoints: task.expected_endpoints,
    start_time: task.start_time.toISOString(),
  };
}

/**
 * Sends stored tasks. A task is SENT only after the broker confirmed it; one the broker did not take
 * stays CREATED and `resendUnsent` sends it later, from any API instance.
 */
export class Publisher {
  /** Records confirms in batches; answers when each was recorded. */
  private readonly sent: Batcher<number, Date>;

  constructor(
    private readonly transport: ServerTransport,
    private readonly tasks: TaskStore,
    private readonly log: Logger,
    maxBatch = 256,
  ) {
    this.sent = new Batcher<number, Date>(async (ids) => {
      const now = new Date();
      await this.tasks.markSent(ids, now);
      return ids.map(() => now);
    }, { maxBatch });
  }

  /** A task that listed no endpoints goes to the type's fanout; one that did, to those endpoints' queues only. */
  private publish(task: Task, resend?: PublishTaskOptions['resend']): Promise<void> {
    return this.transport.publishTask(toMessage(task), { broadcast: task.endpoints === null, resend });
  }

  /** Publishes a freshly stored task; on a broker failure it is left CREATED for the resend job. */
  async send(task: Task): Promise<Task> {
    try {
      await this.publish(task);
    } catch (err) {
      if (!(err instanceof BrokerUnavailableError)) throw err;
      this.log.warn('task stored but not sent; it is resent when the broker is back', { taskId: task.id, err });
      return task;
    }
    let now: Date;
    try {
      now = await this.sent.submit(task.id);
    } catch (err) {
      // Published but not recorded: the resend job sends it again, and managers ignore the repeat.
      this.log.warn('task sent but not marked SENT', { taskId: task.id, err });
      return task;
    }
    return { ...task, status: task.status === 'CREATED' ? 'SENT' : task.status, sent_time: task.sent_time ?? now };
  }

  /** Sends tasks left CREATED for longer than `afterMs`. Returns how many were sent. */
  resendUnsent(afterMs: number): Promise<number> {
    return this.resend({ kind: 'unsent', before: new Date(Date.now() - afterMs) });
  }

  /**
   * Sends again every task some expected endpoint has not finished. For a transport that keeps nothing
   * across a restart (in-process): endpoints that already finished a task skip the repeat.
   */
  redeliverUnfinished(): Promise<number> {
    return this.resend({ kind: 'unfinished' });
  }

  private async resend(selection: Parameters<TaskStore['claim']>[0]): Promise<number> {
    if (!this.transport.connected) return 0;
    let total = 0;
    let afterId = 0;
    for (;;) {
      let sent = 0;
      const claimed = await this.tasks.claim(selection, afterId, RESEND_BATCH, async (tasks, em) => {
        const results = await Promise.allSettled(tasks.map((t) => this.publish(t, selection.kind)));
        const ok = tasks.filter((_t, i) => results[i].status === 'fulfilled').map((t) => t.id);
        await this.tasks.markSent(ok, new Date(), em);
        sent = ok.length;
      });
      total += sent;
      if (claimed.length) afterId = claimed[claimed.length - 1].id;
      if (claimed.length < RESEND_BATCH || sent < claimed.length) break;
    }
    if (total > 0) this.log.info(selection.kind === 'unsent' ? 'sent tasks the broker had not confirmed' : 'redelivered unfinished tasks', { count: total });
    return total;
  }
}
