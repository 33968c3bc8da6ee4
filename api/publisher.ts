import { Batcher } from '../lib/batcher';
import { BrokerUnavailableError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { PublishTaskOptions, ServerTransport } from '../protocol/server-transport';
import type { TaskMessage } from '../protocol/wire';
import type { Task } from './storage/rows';
import { allows, EVENT, TASK_STATUS } from './lifecycle/states';
import type { RolloutSend } from './storage/completion';
import { resendDelayMs, ResendBackoff } from './resend-backoff';
import { firstTargets, SendTargets, TaskStore } from './storage/task-store';

/** Tasks the resend job claims (and locks) at a time. */
export const RESEND_BATCH = 200;
/** How long confirmed sends gather before they are recorded together. */
const RECORD_LINGER_MS = 20;

/** A resend run's failed tasks, for its one log line: how many, the first few, the first error. */
interface FailedSends {
  count: number;
  tasks: number[];
  err: unknown;
}

export interface PublisherOptions {
  /** Confirms recorded in one transaction at most. */
  maxBatch?: number;
  /** How long the resend job leaves a task whose send failed before trying it again. */
  backoff?: ResendBackoff;
  /** Called for each task whose send by the resend job failed (a metric). */
  onResendFailure?: (type: string) => void;
}

export function toMessage(task: Task, round = 0): TaskMessage {
  return {
    id: task.id,
    identifier: task.identifier,
    type: task.type,
    payload: task.payload,
    endpoints: task.expected_endpoints,
    start_time: task.start_time.toISOString(),
    ...(round > 0 ? { round } : {}),
  };
}

/**
 * The deadline a send is signed with. A task sent before keeps its deadline; one not sent yet (or retried
 * whole) gets its deadline from the send the broker confirms (TaskStore.markSent), which the stored one,
 * counted from its creation or retry, precedes by moments; a resend, long after, counts from `now` (the
 * database's clock), or the endpoints would refuse a task that is only now leaving.
 */
export function signedDeadline(task: Task, now?: Date): Date {
  const stored = task.deadline ?? new Date(task.start_time.getTime() + task.timeout * 1000);
  if (task.sent_time !== null || now === undefined) return stored;
  const fromNow = new Date(now.getTime() + task.timeout * 1000);
  return fromNow > stored ? fromNow : stored;
}

/**
 * Sends stored tasks. A send is recorded (the task SENT, a `sent` event) only after the broker confirmed
 * it; a task the broker did not take stays CREATED and `resendUnsent` sends it later, from any API
 * instance, to the endpoints that have not answered.
 */
export class Publisher {
  /**
   * Records confirms in batches, in the background: the broker's confirm is what makes a task SENT, and
   * the database follows within `RECORD_LINGER_MS`. Should the process die in between, the task is still
   * CREATED there, and the resend job sends it again (the endpoints skip the repeat).
   */
  private readonly sent: Batcher<SendTargets & { at: Date }, void>;

  constructor(
    private readonly transport: ServerTransport,
    private readonly tasks: TaskStore,
    private readonly log: Logger,
    private readonly options: PublisherOptions = {},
  ) {
    this.sent = new Batcher(async (sends) => {
      await this.tasks.markSent(sends);
      return sends.map((): void => undefined);
    }, { maxBatch: options.maxBatch ?? 256, lingerMs: RECORD_LINGER_MS });
    this.large = new Batcher(async (tasks) => {
      for (const task of tasks) await this.sendLarge(task);
      return tasks.map((): void => undefined);
    }, { maxBatch: 1, maxConcurrent: 1 });
  }

  /** The sends of large tasks, one at a time (`sendInBackground`). */
  private readonly large: Batcher<Task, void>;

  /**
   * The first send of a task that listed no endpoints goes to its type's fanout; any other send goes to
   * the listed endpoints' queues only.
   */
  private publish(s: SendTargets, resend?: PublishTaskOptions['resend'], now?: Date): Promise<void> {
    // A rollout's sends are always to named queues: the fanout would reach endpoints whose turn has not come.
    const first = s.round === 0 && resend === undefined && s.endpoints.length === s.task.expected_endpoints.length && !s.task.rollout;
    return this.transport.publishTask(toMessage(s.task, s.round), {
      broadcast: first && s.task.endpoints === null, targets: first ? undefined : s.endpoints, resend, deadline: signedDeadline(s.task, now),
    });
  }

  /** Publishes sends; on a broker failure the task is left CREATED for the resend job. */
  async send(task: Task, sends: SendTargets[] = [{ task, round: 0, endpoints: firstTargets(task), decided: task.rollout !== null }]): Promise<Task> {
    try {
      await Promise.all(sends.map((s) => this.publish(s)));
    } catch (err) {
      if (!(err instanceof BrokerUnavailableError)) throw err;
      this.log.warn({ taskId: task.id, err }, 'task stored but not sent; it is resent when the broker is back');
      return task;
    }
    const at = new Date();
    for (const s of sends) {
      this.sent.submit({ ...s, at }).catch((err: unknown) => {
        // Published but not recorded: the resend job sends it again, and the endpoints skip the repeat.
        this.log.warn({ taskId: task.id, err }, 'task sent but not marked SENT');
      });
    }
    // What the confirm just recorded (TaskStore.recordSent), shown without reading it back. The send is
    // recorded a few ms later at the database's time; until then the answer shows the creation's, also the
    // database's: this host's clock may be off.
    const status = allows(task.status, TASK_STATUS.SENT, EVENT.SENT) ? TASK_STATUS.SENT : task.status;
    return { ...task, status, sent_time: task.sent_time ?? task.start_time };
  }

  /**
   * Publishes the sends rollouts decided (their rows are `pending` and their `sent` events stored already);
   * a send the broker does not confirm is left to the resend job, which finds its rows never stamped.
   */
  async sendDecided(sends: RolloutSend[]): Promise<void> {
    if (sends.length === 0) return;
    const tasks = new Map<number, Task | null>();
    for (const s of sends) if (!tasks.has(s.taskId)) tasks.set(s.taskId, await this.tasks.findById(s.taskId));
    await Promise.all(sends.map(async (s) => {
      const task = tasks.get(s.taskId);
      if (task) await this.send(task, [{ task, round: s.round, endpoints: s.endpoints, decided: true }]);
    }));
  }

  /** `sendDecided` in the background, for callers that must not wait on the broker. */
  dispatch = (sends: RolloutSend[]): void => {
    if (sends.length === 0) return;
    this.inBackground(this.sendDecided(sends).catch((err: unknown) => {
      this.log.warn({ err, tasks: [...new Set(sends.map((s) => s.taskId))] }, 'rollout send not published; the resend job sends it');
    }));
  };

  /**
   * `send` in the background, for a POST answered once its task is stored (a task for a large fleet). Such
   * sends go one at a time, each writing the task's response rows if it was stored without them, then
   * publishing it: twenty broadcasts to 10,000 endpoints at once would each take a connection of the pool
   * and wait on the broker's confirm of 10,000 queues' copies past `publish_timeout`, then be sent again
   * by the resend job, to each queue by name. The tasks waiting their turn are held from the resend job
   * (`TaskStore.holdSends`). A send that fails is the resend job's, as when the broker or the database is
   * away; a shutdown waits for these sends (`flush`).
   */
  sendInBackground(task: Task): void {
    this.waiting.add(task.id);
    this.inBackground(this.large.submit(task).then(() => undefined, (err: unknown) => {
      this.log.warn({ err, taskId: task.id }, 'task stored but not sent; the resend job sends it');
    }));
  }

  private async sendLarge(task: Task): Promise<void> {
    this.waiting.delete(task.id);
    // Shutting down: not started, so handed to the resend job (of any API instance) at once rather than waited for.
    if (this.stopping) return this.tasks.holdSends([task.id], 0);
    // Not worth failing this send over: were the hold to lapse, the resend job would send a waiting task too.
    await this.tasks.holdSends([...this.waiting]).catch((err: unknown) => this.log.warn({ err }, 'could not renew the hold of the large tasks waiting to be sent'));
    if (task.rows_pending) await this.tasks.responseRows.write([task.id]);
    // Not sent (the broker away, or no confirm in time): the resend job's at once, not when the hold lapses.
    if (await this.send(task) === task) await this.tasks.holdSends([task.id], 0);
  }

  /** Large tasks waiting for their turn to be sent (`sendInBackground`). */
  private readonly waiting = new Set<number>();
  private stopping = false;

  /** Sends under way that no caller waits for; `flush` (shutdown) waits for them. */
  private inBackground(p: Promise<void>): void {
    this.dispatching.add(p);
    void p.finally(() => this.dispatching.delete(p));
  }

  private readonly dispatching = new Set<Promise<void>>();

  /**
   * Shutdown: waits for the rollout sends, the large send under way and the confirms in hand to be recorded;
   * the large sends not started are handed to the resend job.
   */
  async flush(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.dispatching);
    return this.sent.idle();
  }

  /** Sends tasks left CREATED and untouched for longer than `afterMs` before `now` (the database's clock). Returns how many were sent. */
  resendUnsent(afterMs: number, now: Date): Promise<number> {
    return this.resend({ kind: 'unsent', before: new Date(now.getTime() - afterMs) }, now);
  }

  /**
   * Sends again every task some expected endpoint has not finished, to those endpoints. For a broker that
   * keeps nothing across a restart (in-process): it stands for the redeliveries a durable broker would make.
   */
  redeliverUnfinished(): Promise<number> {
    return this.resend({ kind: 'unfinished' });
  }

  /**
   * One pass over the tasks the selection takes, batch after batch in id order. A task whose send fails
   * is left for a later run (after its backoff, see `resendDelayMs`) and the pass goes on to the next
   * ones: tasks that cannot be sent (an unroutable target, a queue without a leader) never hold up those
   * that can. The pass stops when the connection is lost: then every send would fail, through no fault
   * of its task, and such failures start no backoff.
   */
  private async resend(selection: Parameters<TaskStore['claim']>[0], now?: Date): Promise<number> {
    if (!this.transport.connected) return 0;
    const backoff = this.options.backoff;
    const delayMs = backoff ? (failures: number) => resendDelayMs(failures, backoff) : undefined;
    let total = 0;
    const failed: FailedSends = { count: 0, tasks: [], err: undefined };
    for (let afterId = 0; ;) {
      const claimed = await this.tasks.claim(selection, afterId, RESEND_BATCH, async (sends) => {
        const results = await Promise.allSettled(sends.map((s) => this.publish(s, selection.kind, now)));
        const at = new Date();
        const ok = sends.filter((_s, i) => results[i].status === 'fulfilled').map((s) => ({ ...s, at }));
        total += ok.length;
        return { sent: ok, failed: this.transport.connected ? this.failedTasks(sends, results, failed) : [] };
      }, delayMs);
      if (claimed.length < RESEND_BATCH || !this.transport.connected) break;
      afterId = claimed[claimed.length - 1].id;
    }
    if (total > 0) this.log.info({ count: total }, selection.kind === 'unsent' ? 'sent tasks the broker had not confirmed' : 'redelivered unfinished tasks');
    if (failed.count > 0) {
      this.log.warn({ count: failed.count, tasks: failed.tasks, err: failed.err },
        'tasks not sent again; each is tried again after its backoff');
    }
    return total;
  }

  /** The tasks some send of which failed, counted (`onResendFailure`) and summed up in `into` for the log. */
  private failedTasks(sends: SendTargets[], results: PromiseSettledResult<void>[], into: FailedSends): number[] {
    const ids = new Set<number>();
    sends.forEach((s, i) => {
      const r = results[i];
      if (r.status === 'fulfilled' || ids.has(s.task.id)) return;
      ids.add(s.task.id);
      this.options.onResendFailure?.(s.task.type);
      into.count++;
      into.err ??= r.reason;
      if (into.tasks.length < 10) into.tasks.push(s.task.id);
    });
    return [...ids];
  }
}
