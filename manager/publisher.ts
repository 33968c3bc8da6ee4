import type { Task } from './entities/task';
import { BrokerUnavailableError } from './errors';
import type { Logger } from './logger';
import type { TaskStore } from './task-store';
import type { PublishOptions, Transport } from './transport';
import { toMessage } from './wire';
import { Batcher } from './batcher';

const RESEND_BATCH = 200;

/**
 * Sends stored tasks. A task is SENT only after the broker confirmed it; one the broker did not take
 * stays CREATED and `resendUnsent` sends it later, from any API instance.
 */
export class Publisher {
  private readonly sent: Batcher<number, void>;

  constructor(
    private readonly transport: Transport,
    private readonly tasks: TaskStore,
    private readonly log: Logger,
    maxBatch = 256,
  ) {
    this.sent = new Batcher<number, void>(async (ids) => {
      await this.tasks.markSent(ids, new Date());
      return ids.map((): void => undefined);
    }, { maxBatch });
  }

  private async publish(task: Task, options: PublishOptions = {}): Promise<void> {
    // Declared before publishing: a fanout drops messages for queues that do not exist yet.
    await this.transport.ensureEndpointQueues(task.type, task.expected_endpoints);
    await this.transport.publish(toMessage(task), options);
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
    const now = new Date();
    try {
      await this.sent.submit(task.id);
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
        const results = await Promise.allSettled(tasks.map((t) => this.publish(t, { resend: selection.kind })));
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
