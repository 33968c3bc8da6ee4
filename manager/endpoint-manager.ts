import type { DataSource } from 'typeorm';
import { Batcher } from './batcher';
import { Completion, FinishItem, HandlerResult, ReceiveItem, ReceiveOutcome, ResponseKey, ResponseState } from './completion';
import { isTransientDbError } from './database';
import { EndpointRegistry } from './endpoint-registry';
import { ERRNR_ATTEMPTS_EXHAUSTED, HandlerModule, HandlerTask, runHandler } from './handler';
import { startPeriodic, PeriodicJob } from './jobs';
import type { Logger } from './logger';
import type { Delivery, Transport } from './transport';
import { decodeMessage, TaskMessage } from './wire';
import { writeJson } from './sql-values';
import { InvalidMessageError } from './errors';

export interface EndpointManagerOptions {
  endpoint: string;
  /** Task type → its handler module; the manager consumes exactly these types. */
  handlers: ReadonlyMap<string, HandlerModule>;
  handlerTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxAttempts: number;
  /**
   * A first delivery runs its handler at once and writes its response row only when it finishes, if that
   * is within this many ms; a longer run writes its receipt (status 0) at this point. 0: every delivery
   * is recorded before its handler starts.
   */
  receiptDelayMs: number;
  /** Most deliveries written in one transaction. */
  maxBatch: number;
  ds: DataSource;
  transport: Transport;
  logger: Logger;
}

/** Results of one finish batch, by `resultWeight`; one larger result (up to MAX_RESPONSE_PAYLOAD_BYTES) goes alone. */
const MAX_FINISH_BATCH_BYTES = 4 * 1024 * 1024;

/** About the SQL a result adds, escaping included (at most every character doubled). */
function resultWeight(item: FinishItem): number {
  return 2 * ((item.payloadJson?.length ?? 0) + (item.result.errmsg?.length ?? 0)) + 256;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One endpoint: consumes its queue of every task type it serves, records a response per task, runs the
 * handler and acks only once the finished response is committed. Redeliveries of finished tasks are
 * acked without running; a task started `maxAttempts` times without finishing is finished as failed and
 * dead-lettered.
 */
export class EndpointManager {
  private readonly lookup: Batcher<ResponseKey, ResponseState>;
  private readonly receiver: Batcher<ReceiveItem, ReceiveOutcome>;
  private readonly finisher: Batcher<FinishItem, boolean>;
  private readonly registry: EndpointRegistry;
  private readonly log: Logger;
  private readonly inFlight = new Set<Promise<void>>();
  /** Task id → the run of its handler in this process, so that a second copy never runs beside it. */
  private readonly running = new Map<number, Promise<void>>();
  private heartbeat: PeriodicJob | null = null;
  private stopping = false;

  constructor(private readonly o: EndpointManagerOptions) {
    const completion = new Completion(o.ds);
    const split = (err: unknown): boolean => !isTransientDbError(err);
    this.lookup = new Batcher((items) => completion.lookupMany(items), { maxBatch: o.maxBatch, split });
    this.receiver = new Batcher((items) => completion.receiveMany(items, new Date(), o.maxAttempts), { maxBatch: o.maxBatch, split });
    // Results travel in one statement: a batch stays well within MySQL's max_allowed_packet (16 MiB by default).
    this.finisher = new Batcher((items) => completion.finishMany(items, new Date()), {
      maxBatch: o.maxBatch, split, weigh: resultWeight, maxWeight: MAX_FINISH_BATCH_BYTES,
    });
    this.registry = new EndpointRegistry(o.ds);
    this.log = o.logger.child({ endpoint: o.endpoint });
  }

  get endpoint(): string {
    return this.o.endpoint;
  }

  get taskTypes(): string[] {
    return [...this.o.handlers.keys()];
  }

  async start(): Promise<void> {
    await this.withDbRetry('register', () => this.registry.heartbeat(this.o.endpoint, this.taskTypes, new Date()));
    this.heartbeat = startPeriodic('heartbeat', this.o.heartbeatIntervalMs,
      () => this.registry.heartbeat(this.o.endpoint, this.taskTypes, new Date()), this.log);
    for (const type of this.taskTypes) {
      await this.o.transport.consume(type, this.o.endpoint, (d) => this.track(this.process(type, d)));
    }
    this.log.info('endpoint manager started', { taskTypes: this.taskTypes });
  }

  private track(work: Promise<void>): Promise<void> {
    this.inFlight.add(work);
    return work.finally(() => this.inFlight.delete(work));
  }

  /** Retries while the database is unreachable; gives up only when shutting down (the delivery is then released). */
  private async withDbRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isTransientDbError(err) || this.stopping) throw err;
        if (attempt === 0) this.log.warn('database unavailable, retrying', { what, err });
        await sleep(Math.min(5000, 100 * 2 ** attempt));
      }
    }
  }

  private async process(type: string, d: Delivery): Promise<void> {
    let msg: TaskMessage;
    try {
      msg = decodeMessage(d.body, d.contentType);
      if (msg.type !== type) throw new InvalidMessageError(`a '${msg.type}' task on the '${type}' queue`);
    } catch (err) {
      this.log.warn('invalid message dead-lettered', { type, err, body: d.body.subarray(0, 200).toString('utf8') });
      d.deadLetter();
      return;
    }
    if (!msg.endpoints.includes(this.o.endpoint)) {
      d.ack();
      return;
    }
    const log = this.log.child({ taskId: msg.id, identifier: msg.identifier, type });
    try {
      await this.handle(msg, d, log);
    } catch (err) {
      if (!this.stopping) {
        log.error('could not process task; it will be redelivered', { err });
        await sleep(1000);
      }
      d.release();
    }
  }

  /**
   * A copy of a task whose handler is running in this process (a redelivery after a lost channel, a
   * resend) waits for that run, so that the handler never runs twice side by side here.
   */
  private async handle(msg: TaskMessage, d: Delivery, log: Logger): Promise<void> {
    const running = this.running.get(msg.id);
    if (running) {
      log.info('task is running here already; this copy waits for it');
      await running.catch(() => undefined);
      // Decided again from the database: normally the run committed and this copy is acked unrun; if
      // the run failed (its delivery handed back on a channel that is gone), this copy takes it over.
      return this.handle(msg, d, log);
    }
    const run = this.runOnce(msg, d, log);
    this.running.set(msg.id, run);
    try {
      await run;
    } finally {
      if (this.running.get(msg.id) === run) this.running.delete(msg.id);
    }
  }

  /**
   * Two paths. A first delivery (never delivered before, not a resend) of a task this endpoint has no
   * response for runs its handler without writing anything first: its response row is written once, finished,
   * in the same transaction as the task's counters (a receipt is written only if the handler outlasts
   * `receiptDelayMs`). Anything else (a redelivery, a resend, a row already there) is recorded first, with
   * its attempt counted, so that a handler that crashes the process runs a bounded number of times. A
   * crash during an unrecorded first run is counted on the broker's redelivery of that message, which
   * starts at attempt 2. (A resend starts at 1: it may be the only copy ever sent. In standalone mode, where
   * a restart resends, at most one unrecorded run comes on top of `maxAttempts`.)
   */
  private async runOnce(msg: TaskMessage, d: Delivery, log: Logger): Promise<void> {
    const key = { taskId: msg.id, endpoint: this.o.endpoint };
    if (this.o.receiptDelayMs > 0 && !d.redelivered && !d.resent) {
      const state = await this.withDbRetry('look up', () => this.lookup.submit(key));
      if (state === 'fresh') return this.runUnrecorded(msg, d, log);
      if (state !== 'started') return this.settleWithoutRunning(state, d, log);
    }
    const firstAttempt = d.redelivered && this.o.receiptDelayMs > 0 ? 2 : 1;
    const outcome = await this.withDbRetry('receive', () => this.receiver.submit({ ...key, firstAttempt, receiptOnly: false }));
    if (outcome.action === 'unknown' || outcome.action === 'finished') return this.settleWithoutRunning(outcome.action, d, log);
    if (outcome.action === 'exhausted') {
      const result = { payload: null, errnr: ERRNR_ATTEMPTS_EXHAUSTED, errmsg: `handler did not finish in ${outcome.attempts} attempts` };
      await this.finish(msg, result, new Date());
      log.error('handler attempts exhausted; task finished as failed and dead-lettered', { attempts: outcome.attempts });
      d.deadLetter();
      return;
    }
    const startedAt = new Date();
    await this.finishAndAck(msg, d, log, await this.runHandler(msg, outcome.attempt, log), startedAt);
  }

  private async runUnrecorded(msg: TaskMessage, d: Delivery, log: Logger): Promise<void> {
    const startedAt = new Date();
    const timer = setTimeout(() => {
      void this.withDbRetry('receive', () => this.receiver.submit({ taskId: msg.id, endpoint: this.o.endpoint, firstAttempt: 1, receiptOnly: true, startedAt }))
        .catch((err: unknown) => log.warn('could not record the receipt of a running task', { err }));
    }, this.o.receiptDelayMs);
    let result: HandlerResult;
    try {
      result = await this.runHandler(msg, 1, log);
    } finally {
      clearTimeout(timer);
    }
    // The receipt is not waited for: it and the finish may commit in either order (a receipt that comes
    // second finds the row finished and writes nothing), and a finish must not wait on a receipt's retries.
    await this.finishAndAck(msg, d, log, result, startedAt);
  }

  private async finishAndAck(msg: TaskMessage, d: Delivery, log: Logger, result: HandlerResult, startedAt: Date): Promise<void> {
    await this.finish(msg, result, startedAt);
    log.info('task finished', { errnr: result.errnr });
    d.ack();
  }

  private settleWithoutRunning(state: 'unknown' | 'finished', d: Delivery, log: Logger): void {
    if (state === 'unknown') {
      log.warn('message names a task that does not exist; dead-lettered');
      d.deadLetter();
    } else {
      log.info('already finished; redelivery acked without running the handler');
      d.ack();
    }
  }

  private runHandler(msg: TaskMessage, attempt: number, log: Logger): Promise<HandlerResult> {
    const handler = this.o.handlers.get(msg.type);
    if (!handler) throw new Error(`no handler for '${msg.type}'`);
    const task: HandlerTask = {
      id: msg.id, identifier: msg.identifier, type: msg.type, payload: msg.payload, endpoints: msg.endpoints, start_time: msg.start_time,
    };
    log.info('running handler', { attempt });
    return runHandler(handler, task, this.o.endpoint, attempt, this.o.handlerTimeoutMs);
  }

  private finish(msg: TaskMessage, result: HandlerResult, startedAt: Date): Promise<boolean> {
    const item: FinishItem = { taskId: msg.id, endpoint: this.o.endpoint, result, payloadJson: writeJson(result.payload), startedAt };
    return this.withDbRetry('finish', () => this.finisher.submit(item));
  }

  /**
   * Waits up to `timeoutMs` for running tasks to finish and ack (call after the transport stopped
   * consuming). Whatever is still running then is left unacked, so the broker hands it out again.
   */
  async drain(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
    const outcome = await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    clearTimeout(timer);
    this.stopping = true;
    if (outcome === 'timeout') this.log.warn('shutdown timeout: unfinished tasks are handed back', { count: this.inFlight.size });
    await this.heartbeat?.stop();
  }
}
