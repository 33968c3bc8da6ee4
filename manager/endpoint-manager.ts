import type { DataSource } from 'typeorm';
import { Batcher } from './batcher';
import { Completion, FinishItem, HandlerResult, ReceiveOutcome, ResponseKey } from './completion';
import { isTransientDbError } from './database';
import { EndpointRegistry } from './endpoint-registry';
import { ERRNR_ATTEMPTS_EXHAUSTED, HandlerModule, HandlerTask, runHandler } from './handler';
import { startPeriodic, PeriodicJob } from './jobs';
import type { Logger } from './logger';
import type { Delivery, Transport } from './transport';
import { decodeMessage, TaskMessage } from './wire';
import { InvalidMessageError } from './errors';

export interface EndpointManagerOptions {
  endpoint: string;
  /** Task type → its handler module; the manager consumes exactly these types. */
  handlers: ReadonlyMap<string, HandlerModule>;
  handlerTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxAttempts: number;
  /** Most deliveries written in one transaction. */
  maxBatch: number;
  ds: DataSource;
  transport: Transport;
  logger: Logger;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One endpoint: consumes its queue of every task type it serves, records a response per task, runs the
 * handler and acks only once the finished response is committed. Redeliveries of finished tasks are
 * acked without running; a task started `maxAttempts` times without finishing is finished as failed and
 * dead-lettered.
 */
export class EndpointManager {
  private readonly receiver: Batcher<ResponseKey, ReceiveOutcome>;
  private readonly finisher: Batcher<FinishItem, boolean>;
  private readonly registry: EndpointRegistry;
  private readonly log: Logger;
  private readonly inFlight = new Set<Promise<void>>();
  private heartbeat: PeriodicJob | null = null;
  private stopping = false;

  constructor(private readonly o: EndpointManagerOptions) {
    const completion = new Completion(o.ds);
    this.receiver = new Batcher((items) => completion.receiveMany(items, new Date(), o.maxAttempts), o.maxBatch);
    this.finisher = new Batcher((items) => completion.finishMany(items, new Date()), o.maxBatch);
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

  private async handle(msg: TaskMessage, d: Delivery, log: Logger): Promise<void> {
    const outcome = await this.withDbRetry('receive', () => this.receiver.submit({ taskId: msg.id, endpoint: this.o.endpoint }));
    if (outcome.action === 'unknown') {
      log.warn('message names a task that does not exist; dead-lettered');
      d.deadLetter();
      return;
    }
    if (outcome.action === 'finished') {
      log.info('already finished; redelivery acked without running the handler');
      d.ack();
      return;
    }
    if (outcome.action === 'exhausted') {
      const result = { payload: null, errnr: ERRNR_ATTEMPTS_EXHAUSTED, errmsg: `handler did not finish in ${outcome.attempts} attempts` };
      await this.finish(msg, result);
      log.error('handler attempts exhausted; task finished as failed and dead-lettered', { attempts: outcome.attempts });
      d.deadLetter();
      return;
    }
    const handler = this.o.handlers.get(msg.type);
    if (!handler) throw new Error(`no handler for '${msg.type}'`);
    const task: HandlerTask = {
      id: msg.id, identifier: msg.identifier, type: msg.type, payload: msg.payload, endpoints: msg.endpoints, start_time: msg.start_time,
    };
    log.info('running handler', { attempt: outcome.attempt });
    const result = await runHandler(handler, task, this.o.endpoint, outcome.attempt, this.o.handlerTimeoutMs);
    await this.finish(msg, result);
    log.info('task finished', { errnr: result.errnr });
    d.ack();
  }

  private finish(msg: TaskMessage, result: HandlerResult): Promise<boolean> {
    return this.withDbRetry('finish', () => this.finisher.submit({ taskId: msg.id, endpoint: this.o.endpoint, result }));
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
