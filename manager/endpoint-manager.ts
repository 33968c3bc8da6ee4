import { InFlight } from '../lib/in-flight';
import type { Logger } from '../lib/logger';
import { startPeriodic, PeriodicJob } from '../lib/periodic';
import { backoffDelay, sleep } from '../lib/retry';
import type { IncomingMessage } from '../protocol/broker';
import type { EndpointTransport } from '../protocol/endpoint-transport';
import type { Facts, Labels } from '../protocol/labels';
import { Refusal, SIGNATURE_HEADER, TaskVerifier } from '../protocol/task-signature';
import { decodeControlMessage, decodeTaskMessage, ERRNR_TASK_REFUSED, RESENT_HEADER, StateReply, TaskMessage } from '../protocol/wire';
import { CommandRunner } from './command-runner';
import { DeadRounds } from './dead-rounds';
import { HandlerModule, HandlerTask, runHandler } from './handler';
import { Reporter } from './reporter';
import { DEFAULT_OUTPUT_LIMITS, OutputLimits, RunOutput } from './run-output';
import { TypeLimiter } from './type-limiter';
import { RunHandedBackError, WorkerPool } from './worker-pool';

export interface EndpointManagerOptions {
  endpoint: string;
  /** Task type → its handler module, or the runner of a command type; the manager consumes exactly these types. */
  handlers: ReadonlyMap<string, HandlerModule | CommandRunner>;
  handlerTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** Sent with state requests: how many starts of a handler the server side allows for one response. */
  maxAttempts: number;
  /** A handler still running after this many ms gets a receipt; 0: every run gets one when it starts. */
  receiptDelayMs: number;
  /** How long a state request waits for the server side's answer before it is asked again. */
  stateTimeoutMs: number;
  /** Unacknowledged task deliveries per queue. */
  prefetch: number;
  transport: EndpointTransport;
  /** Sent with every register and heartbeat, so that the registry always holds the latest. */
  labels?: Labels;
  facts?: Facts;
  /** Checks each task's signature before anything else (docs/security.md "Signed tasks"); absent: unsigned tasks run. */
  verifier?: TaskVerifier | null;
  logger: Logger;
  /** The bounds of each run's live output (`manager.output_*`). */
  output?: OutputLimits;
  /** Where module handlers run (`manager.isolation: process`); absent: in this process (`none`). */
  pool?: WorkerPool | null;
  /** The most runs of a task type at once (`manager.type_concurrency`), shared by the managers of a process. */
  limiter?: TypeLimiter | null;
}

/**
 * How long to wait before asking the server side again. Capped at 2 s: a request refused while a quorum
 * queue elects a new leader fails at once and is answered a second later; jittered, so that a fleet
 * reconnecting together does not ask in step.
 */
function askAgainAfter(attempt: number): number {
  return backoffDelay(attempt, 250, 2_000, 'half');
}

/** Tasks finished here remembered (and tasks whose rounds must not run), so that a copy arriving later is acked without asking. */
export const REMEMBERED = 10_000;

/** How long a shutdown waits for the commands it killed to be seen ending (their pipes closing). */
const KILLED_RUNS_SETTLE_MS = 2_000;

/** A task's copy for this endpoint: the task and its round (0, then one more per retry). */
const keyOf = (msg: { id: number; round?: number }): string => `${msg.id}/${msg.round ?? 0}`;

/** A set that forgets its oldest entries past `limit`. */
class Remembered {
  private readonly keys = new Set<string>();
  constructor(private readonly limit: number) {}
  has(key: string): boolean { return this.keys.has(key); }
  add(key: string): void {
    this.keys.add(key);
    if (this.keys.size > this.limit) this.keys.delete(this.keys.values().next().value as string);
  }
}


/**
 * One endpoint: consumes its queue of every task type it serves, runs the handler and reports the result
 * over the broker, and acks a task only once the broker confirmed its result. A copy that may have run
 * before (a redelivery, a resend) is first checked with the server side. Holds no database connection.
 */
export class EndpointManager {
  private readonly reporter: Reporter;
  private readonly log: Logger;
  private readonly inFlight = new InFlight();
  /** A task → the run of its handler in this process, so that no other copy (or round) of it runs beside it. */
  private readonly running = new Map<string, Promise<void>>();
  /** A task's copy → what aborts its running handler when the task is cancelled. */
  private readonly aborts = new Map<string, AbortController>();
  private readonly finished = new Remembered(REMEMBERED);
  /** The rounds not to run: cancelled ones, and those older than a round known of (superseded). */
  private readonly dead = new DeadRounds(REMEMBERED);
  /** Since when the deliveries wait for a server side that does not answer (reported with the heartbeats). */
  private waitingSince: Date | null = null;
  /** Settled once the cancelled tasks were fetched after the latest (re)connect; deliveries wait for it. */
  private synced: Promise<void>;
  private heartbeat: PeriodicJob | null = null;
  private registered = false;
  private stopping = false;
  /** Aborted when a stop begins: isolated runs abort their handlers and end without a result. */
  private readonly shutdown = new AbortController();
  /** Aborted when the stop's time is over: isolated runs' processes are killed. */
  private readonly kill = new AbortController();

  constructor(private readonly o: EndpointManagerOptions) {
    this.log = o.logger.child({ endpoint: o.endpoint });
    this.reporter = new Reporter(o.transport, this.log, () => this.stopping);
    this.synced = new Promise<void>(() => undefined);
  }

  get endpoint(): string {
    return this.o.endpoint;
  }

  /** The worker pool this manager's module handlers run in (shared by the managers of a process), if any. */
  get pool(): WorkerPool | null {
    return this.o.pool ?? null;
  }

  get taskTypes(): string[] {
    return [...this.o.handlers.keys()];
  }

  /**
   * Connects (or keeps trying in the background), declares and consumes the endpoint's queues, then
   * registers: a broadcast created after the registration is stored reaches this endpoint.
   */
  async start(): Promise<void> {
    await this.o.transport.start();
    // First the control messages (cancels), then the list of tasks cancelled while this manager was away;
    // the tasks wait for both, so that none of those runs.
    await this.o.transport.consumeControl((m) => this.onControl(m), () => { this.synced = this.fetchCancelled(); });
    for (const type of this.taskTypes) {
      await this.o.transport.consumeTasks(type, this.o.prefetch, (m) => { void this.inFlight.track(this.process(type, m)); });
    }
    await this.announce().catch((err: unknown) => this.log.warn({ err }, 'could not register yet; retrying with the heartbeats'));
    this.heartbeat = startPeriodic('heartbeat', this.o.heartbeatIntervalMs, () => this.announce(), this.log);
    this.log.info({ taskTypes: this.taskTypes }, 'endpoint manager started');
  }

  /** Registration until one was confirmed, heartbeats after that. */
  private async announce(): Promise<void> {
    const kind = this.registered ? 'heartbeat' : 'register';
    const event = {
      kind, endpoint: this.o.endpoint, task_types: this.taskTypes, time: new Date().toISOString(),
      ...(this.waitingSince ? { waiting_since: this.waitingSince.toISOString() } : {}),
      ...(this.o.labels ? { labels: this.o.labels } : {}),
      ...(this.o.facts ? { facts: this.o.facts } : {}),
    } as const;
    // A heartbeat is worthless once the next one is due; a registration must arrive.
    await this.o.transport.publishEvents([event], kind === 'register'
      ? { persistent: true } : { persistent: false, expirationMs: 3 * this.o.heartbeatIntervalMs });
    this.registered = true;
  }

  private onControl(m: IncomingMessage): void {
    m.ack();
    let msg;
    try {
      msg = decodeControlMessage(m.body, m.contentType);
    } catch (err) {
      this.log.warn({ err }, 'invalid control message ignored');
      return;
    }
    const round = msg.rounds[this.o.endpoint];
    if (round === undefined) return;
    this.dead.add(msg.task_id, round);
    // The round named, or an older one still running here: both are over.
    const running = [...this.aborts].filter(([k]) => k.startsWith(`${msg.task_id}/`) && Number(k.split('/')[1]) <= round);
    this.log.info({ taskId: msg.task_id, round }, running.length > 0 ? 'task cancelled; aborting its handler' : 'task cancelled');
    for (const [, abort] of running) abort.abort();
  }

  /**
   * Asks the server side for the tasks cancelled for this endpoint, until it answers. Meanwhile nothing
   * runs (nothing could be checked): the wait is logged once, reported with every heartbeat
   * (`waiting_since`), and ends by itself when a server side answers.
   */
  private async fetchCancelled(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let problem: unknown = 'the server side cannot reach its database';
      try {
        const reply = await this.o.transport.requestCancelled(this.o.stateTimeoutMs);
        if (reply.action === 'cancelled') {
          this.dead.sync(reply.cancelled, reply.truncated === true);
          this.endWait(reply.truncated === true);
          return;
        }
        if (reply.action === 'refused') {
          this.log.error('the server side refused this endpoint (its RabbitMQ user is not the endpoint\'s name?); going on without the cancelled tasks');
          this.dead.sync([], true);
          this.endWait(true);
          return;
        }
      } catch (err) {
        problem = err;
      }
      if (this.stopping) return;
      if (attempt === 0) {
        this.waitingSince ??= new Date();
        this.log.warn({ err: problem, waitingSince: this.waitingSince.toISOString() },
          'no answer from the server side about cancelled tasks; deliveries wait (nothing runs), asking again');
        void this.announce().catch(() => undefined);
      }
      await sleep(askAgainAfter(Math.min(attempt, 10)));
    }
  }

  private endWait(truncated: boolean): void {
    if (this.waitingSince) {
      this.log.info({ waitedMs: Date.now() - this.waitingSince.getTime() }, 'the server side answered; deliveries run again');
      this.waitingSince = null;
      void this.announce().catch(() => undefined);
    }
    if (truncated) this.log.info('the list of cancelled tasks was cut; older deliveries are checked with the server side before they run');
  }

  private async process(type: string, d: IncomingMessage): Promise<void> {
    let msg: TaskMessage;
    try {
      msg = decodeTaskMessage(d.body, d.contentType);
      if (msg.type !== type) throw new Error(`a '${msg.type}' task on the '${type}' queue`);
    } catch (err) {
      this.log.warn({ type, err, body: d.body.subarray(0, 200).toString('utf8') }, 'invalid message dead-lettered');
      d.deadLetter();
      return;
    }
    const refusal = this.o.verifier?.check(d.headers[SIGNATURE_HEADER], msg, d.body, new Date()) ?? null;
    if (refusal) return this.refuse(msg, d, refusal);
    if (!msg.endpoints.includes(this.o.endpoint)) {
      // A broadcast created before this endpoint registered: it is not expected to do it.
      this.log.debug({ taskId: msg.id }, 'task not for this endpoint; skipped');
      d.ack();
      return;
    }
    const log = this.log.child({ taskId: msg.id, identifier: msg.identifier, type, ...(msg.round ? { round: msg.round } : {}) });
    try {
      await this.synced;
      await this.handle(msg, d, log);
    } catch (err) {
      if (err instanceof RunHandedBackError) log.info('handler run ended by the shutdown; the task is handed back');
      else if (!this.stopping) {
        log.error({ err }, 'could not process task; it will be redelivered');
        await sleep(1000);
      }
      d.release();
    }
  }

  /** Task messages refused for their signature since the start (docs/security.md "Signed tasks"). */
  refusedCount = 0;

  /**
   * A task whose signature does not hold never runs: it is dead-lettered and, when it names this endpoint
   * and this endpoint has not finished it, reported as failed with ERRNR_TASK_REFUSED and the reason. The
   * server side keeps a result it has already (a forged copy never replaces a genuine result).
   */
  private async refuse(msg: TaskMessage, d: IncomingMessage, refusal: Refusal): Promise<void> {
    this.refusedCount++;
    this.log.warn({ taskId: msg.id, type: msg.type, round: msg.round ?? 0, reason: refusal.reason, refused: this.refusedCount },
      `task refused and dead-lettered: ${refusal.message}`);
    if (msg.endpoints.includes(this.o.endpoint) && !this.finished.has(keyOf(msg))) {
      const now = new Date().toISOString();
      try {
        await this.reporter.report({
          kind: 'result', task_id: msg.id, endpoint: this.o.endpoint, attempt: 1, round: msg.round ?? 0, start_time: now, end_time: now,
          errnr: ERRNR_TASK_REFUSED, errmsg: `task refused: ${refusal.message}`, payload: null,
        });
      } catch {
        d.release();
        return;
      }
    }
    d.deadLetter();
  }

  /**
   * A copy of a task whose handler is running in this process (a redelivery after a lost channel, a
   * resend) waits for that run, so that the handler never runs twice side by side here.
   */
  private async handle(msg: TaskMessage, d: IncomingMessage, log: Logger): Promise<void> {
    const key = String(msg.id);
    const running = this.running.get(key);
    if (running) {
      log.info('task is running here already; this copy waits for it');
      await running.catch(() => undefined);
      return this.handle(msg, d, log);
    }
    const run = this.runOnce(msg, d, log);
    this.running.set(key, run);
    try {
      await run;
    } finally {
      if (this.running.get(key) === run) this.running.delete(key);
    }
  }

  /**
   * A first delivery (never delivered before, not a resend) of a task's first round runs at once, as
   * attempt 1, unless it is older than what this manager knows in full of the cancels (after a cut list or
   * a full memory). Any other copy may have run before, here or on a previous life of this process, and a
   * later round may have been superseded by a newer one or cancelled: the server side decides, under the
   * task's lock, recording the attempt, so that a handler that keeps crashing its process runs a bounded
   * number of times and a round is never started once a newer one exists.
   */
  private async runOnce(msg: TaskMessage, d: IncomingMessage, log: Logger): Promise<void> {
    const round = msg.round ?? 0;
    if (this.finished.has(keyOf(msg))) {
      log.info('already finished here; copy acked without running the handler');
      d.ack();
      return;
    }
    // Cancelled, or superseded by a newer round (which cancels the older ones).
    if (this.dead.isDead(msg.id, round)) {
      log.info('task cancelled; skipped');
      d.ack();
      return;
    }
    // A copy of this round: every older one is superseded.
    if (round > 0) this.dead.add(msg.id, round - 1);
    const resent = d.headers[RESENT_HEADER] === true;
    if (!d.redelivered && !resent && round === 0 && !this.dead.uncertain(msg.id)) return this.runAndReport(msg, d, log, 1, true);
    const reply = await this.askState(msg, d.redelivered, resent, log);
    switch (reply.action) {
      case 'run':
        return this.runAndReport(msg, d, log, reply.attempt ?? 1, false);
      case 'finished':
        log.info('already finished; redelivery acked without running the handler');
        this.finished.add(keyOf(msg));
        d.ack();
        return;
      case 'cancelled':
        log.info('task cancelled; skipped');
        this.dead.add(msg.id, round);
        d.ack();
        return;
      case 'exhausted':
        log.error({ maxAttempts: this.o.maxAttempts }, 'handler attempts exhausted; task finished as failed and dead-lettered');
        d.deadLetter();
        return;
      case 'unknown':
        log.warn('message names a task that does not exist; dead-lettered');
        d.deadLetter();
        return;
      default:
        log.warn({ action: reply.action }, 'the server side refused this endpoint for the task; dead-lettered');
        d.deadLetter();
    }
  }

  /** Asks until the server side answers; gives up only when stopping (the delivery is then handed back). */
  private async askState(msg: TaskMessage, redelivered: boolean, resent: boolean, log: Logger): Promise<StateReply> {
    for (let attempt = 0; ; attempt++) {
      let problem: unknown;
      try {
        const reply = await this.o.transport.requestState({
          kind: 'state', task_id: msg.id, endpoint: this.o.endpoint, redelivered, resent, round: msg.round ?? 0, max_attempts: this.o.maxAttempts,
        }, this.o.stateTimeoutMs);
        if (reply.action !== 'unavailable') return reply;
        problem = 'the server side cannot reach its database';
      } catch (err) {
        problem = err;
      }
      if (this.stopping) throw new Error('stopping before the server side answered');
      if (attempt === 0) log.warn({ err: problem }, 'no answer from the server side about a redelivered task, retrying');
      await sleep(askAgainAfter(attempt));
    }
  }

  private async runAndReport(msg: TaskMessage, d: IncomingMessage, log: Logger, attempt: number, first: boolean): Promise<void> {
    const startedAt = new Date();
    const base = { task_id: msg.id, endpoint: this.o.endpoint, attempt, round: msg.round ?? 0, start_time: startedAt.toISOString() };
    // A copy the server side answered has its attempt recorded already; a first delivery shows as
    // received only if its handler outlasts the receipt delay.
    const receipt = (): void => this.reporter.notify({ kind: 'receipt', ...base });
    let timer: NodeJS.Timeout | undefined;
    // Counted from the delivery, an isolated run waiting for a free worker included: the server side
    // waits `api.wait_for_endpoints_timeout` for a sign of it.
    if (first && this.o.receiptDelayMs === 0) receipt();
    else if (first) timer = setTimeout(receipt, this.o.receiptDelayMs);
    const task: HandlerTask = {
      id: msg.id, identifier: msg.identifier, type: msg.type, payload: msg.payload, endpoints: msg.endpoints, start_time: msg.start_time,
    };
    const handler = this.o.handlers.get(msg.type);
    if (!handler) throw new Error(`no handler for '${msg.type}'`);
    log.info({ attempt }, 'running handler');
    const key = keyOf(msg);
    const abort = new AbortController();
    this.aborts.set(key, abort);
    // Cancelled while the server side was answering: the run is recorded, so it starts and stops at once.
    if (this.dead.isDead(msg.id, msg.round ?? 0)) abort.abort();
    const isolated = this.o.pool && !(handler instanceof CommandRunner) ? this.o.pool : null;
    const output = new RunOutput({ task_id: msg.id, endpoint: this.o.endpoint, attempt, round: msg.round ?? 0 },
      this.o.output ?? DEFAULT_OUTPUT_LIMITS, (event) => this.reporter.output(event));
    let result;
    let release: (() => void) | undefined;
    try {
      // Over its type's limit, the run waits here (its delivery held); a shutdown meanwhile hands it back.
      release = await this.o.limiter?.acquire(msg.type, this.shutdown.signal);
      result = handler instanceof CommandRunner
        ? await handler.run(task, abort.signal, output)
        : isolated ? await isolated.run({
          task, endpoint: this.o.endpoint, attempt, round: msg.round ?? 0, timeoutMs: this.o.handlerTimeoutMs,
          cancel: abort.signal, shutdown: this.shutdown.signal, kill: this.kill.signal, onLog: (line) => output.line('log', line),
        }) : await runHandler(handler, task, this.o.endpoint, attempt, this.o.handlerTimeoutMs, abort.signal, msg.round ?? 0, (line) => output.line('log', line));
    } finally {
      release?.();
      clearTimeout(timer);
      this.aborts.delete(key);
    }
    // The lines before the result: a reader of the output who sees the response finished has them all.
    await output.close();
    // An aborted run says so: after a deadline, the server side keeps its timed_out rather than this.
    await this.reporter.report({ kind: 'result', ...base, end_time: new Date().toISOString(), ...result, ...(abort.signal.aborted ? { aborted: true } : {}) });
    this.finished.add(key);
    log.info({ errnr: result.errnr, ...(abort.signal.aborted ? { cancelled: true } : {}) }, 'task finished');
    d.ack();
  }

  /**
   * Stops consuming, waits up to `timeoutMs` for running tasks to finish and ack, then closes the
   * connection: whatever is still running is left unacked, so the broker hands it out again. Isolated
   * handler runs are aborted at once and end without a result (handed back too); their processes are
   * killed when the time is over.
   */
  async stop(timeoutMs: number): Promise<void> {
    await this.o.transport.stopConsuming();
    // Isolated handlers are told to stop (their signal aborted); their runs end without a result.
    this.shutdown.abort();
    const settled = await this.inFlight.settle(timeoutMs);
    this.stopping = true;
    if (!settled) {
      this.log.warn({ count: this.inFlight.size }, 'shutdown timeout: unfinished tasks are handed back');
      // A command's process would outlive this manager (it has a process group of its own): it ends here,
      // and its run ends without a result (its delivery handed back) once the kill is seen.
      let killed = 0;
      for (const h of this.o.handlers.values()) if (h instanceof CommandRunner) killed += h.killAll();
      // The same for isolated handler runs: their processes are killed (the pool replaces them).
      if (this.o.pool) {
        this.kill.abort();
        killed++;
      }
      if (killed > 0) await this.inFlight.settle(KILLED_RUNS_SETTLE_MS);
    }
    await this.heartbeat?.stop();
    await this.o.transport.close();
  }
}
