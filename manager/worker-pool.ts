import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import type { Logger } from '../lib/logger';
import { ERRNR_HANDLER_DIED, ERRNR_HANDLER_TIMEOUT } from '../protocol/wire';
import type { HandlerResult, HandlerTask } from './handler';
import { PoolBook } from './pool-book';
import { AbortCause, describeDeath, FromWorker, parseBatch, parseFromWorker, ResultMessage, ToWorker } from './pool-messages';

export interface WorkerPoolOptions {
  /** Most worker processes, so most handler runs at once (`manager.concurrency`). */
  size: number;
  /** The folder of the handler modules the workers load (`manager.handlers_dir`, made absolute). */
  handlersDir: string;
  /** Each worker's V8 heap limit (`manager.handler_max_heap_mb`). */
  maxHeapMb: number;
  /** Between a timeout's abort of the signal and the kill of the worker's process group (`manager.kill_grace`). */
  killGraceMs: number;
  logger: Logger;
  /** Where the workers' stderr goes (default: this process's stderr, as when handlers ran in it). */
  stderr?: (chunk: string) => void;
  /** The worker script (default: pool-worker.js beside this file, as in dist/manager/ and in the endpoint bundle). */
  script?: string;
}

/** One handler run asked of the pool. */
export interface PoolRunRequest {
  task: HandlerTask;
  endpoint: string;
  attempt: number;
  round: number;
  timeoutMs: number;
  /** Aborted when the task is cancelled: the handler's signal is aborted, its own result kept. */
  cancel: AbortSignal;
  /** Aborted when the manager stops: the handler's signal is aborted and the run ends without a result. */
  shutdown: AbortSignal;
  /** Aborted when the manager's shutdown time is over: the run's process is killed. */
  kill: AbortSignal;
  onLog: (line: string) => void;
  /** Called when a worker takes the run (it may have waited for one). */
  onStart?: () => void;
}

/** A run ended by its manager's shutdown: it has no result, and its delivery goes back to the queue. */
export class RunHandedBackError extends Error {
  constructor() {
    super('the endpoint manager is shutting down: the handler run ended without a result and its task is handed back');
  }
}

/** Characters of a worker's stderr kept, to say why it died (Node's out-of-memory report is a few lines). */
const STDERR_TAIL_CHARS = 8_000;

/** Node options of the manager that a worker must not inherit (a profile per worker, another heap limit, a debugger port). */
const NOT_INHERITED = /^--(?:cpu-prof|heap-prof|max-old-space-size|inspect|prof)/;

/**
 * Most runs a worker holds: the one it runs and those waiting in it, so that a worker woken for a run
 * finds the next ones there (on a loaded machine each wake-up of a process costs more than the run of a
 * short handler), and short handlers need few processes.
 */
const PIPELINE_DEPTH = 8;
/** A worker gets a run queued behind its current one only while that run is younger than this (probably a short one). */
const PIPELINE_WINDOW_MS = 20;
/**
 * ...and only when the runs it holds are of task types whose runs lately took less than this on average:
 * a run is never queued behind a handler known to sleep or work for long (another worker is forked).
 */
const SHORT_RUN_MS = 50;
/**
 * Runs of task types whose runs lately took less than this (the no-op kind: most of it is the IPC) are
 * packed behind a busy worker's runs rather than spread over idle workers: on a loaded machine, waking one
 * process for a burst of them costs far less than waking one per run, and they wait at most a few ms.
 */
const TINY_RUN_MS = 2;

interface Run {
  id: number;
  req: PoolRunRequest;
  resolve: (r: HandlerResult) => void;
  reject: (err: Error) => void;
  timedOut: boolean;
  handedBack: boolean;
  timers: NodeJS.Timeout[];
  /** Undone when the run ends, or goes back to the queue (its worker died before starting it). */
  cleanup: (() => void)[];
}

interface Worker {
  child: ChildProcess;
  ready: boolean;
  /** The runs sent to it, in order: the first runs, the others wait in the worker. */
  runs: Run[];
  /** When the first of `runs` started. */
  headSince: number;
  stderr: string;
  /** Messages for it not yet written: sent together at the end of this turn of the event loop. */
  outbox: ToWorker[];
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: nothing of the group is left.
  }
}

/**
 * The worker processes of a manager process, kept warm (forked when a run needs one, up to `size`, and
 * kept after): each runs one handler at a time, in a process group of its own, so that an exit, a crash,
 * a spin or running out of memory ends only that run, and a timeout can end the handler itself. A run's
 * slot is free again only once its handler returned or its process has exited; a process that exited is
 * replaced, and the runs that waited in it go to other workers (they never started).
 */
export class WorkerPool {
  private readonly book: PoolBook<Worker, Run>;
  private readonly workers = new Set<Worker>();
  private readonly script: string;
  private readonly execArgv: string[];
  private nextRun = 1;
  private closed = false;
  /** Per task type, how long its runs lately took (an exponential average, ms). */
  private readonly runMs = new Map<string, number>();

  constructor(private readonly o: WorkerPoolOptions) {
    this.book = new PoolBook(o.size, PIPELINE_DEPTH);
    this.script = o.script ?? path.join(__dirname, 'pool-worker.js');
    // A manager started with code to evaluate (`node -e`) would hand its code to the workers: then none of its options.
    const inherited = process.execArgv.some((a) => /^(?:-e|--eval|-p|--print)$/.test(a)) ? [] : process.execArgv.filter((a) => !NOT_INHERITED.test(a));
    this.execArgv = [...inherited, `--max-old-space-size=${o.maxHeapMb}`];
  }

  /** Worker processes alive (and their pids), for the tests and the logs. */
  get pids(): number[] {
    return [...this.workers].map((w) => w.child.pid).filter((p): p is number => p !== undefined);
  }

  /**
   * Forks a first worker, so that the first run does not wait for one; resolves once it is ready (or
   * gone), so that a process that says it is ready has loaded it (its start costs CPU).
   */
  warm(): Promise<void> {
    if (this.closed || this.book.liveCount > 0) return Promise.resolve();
    const child = this.forkWorker();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        child.off('message', done);
        child.off('exit', done);
        resolve();
      };
      child.on('message', done);
      child.once('exit', done);
    });
  }

  /**
   * Runs a handler in a worker: resolves with its result (a timeout's, a dead process's included); rejects
   * with RunHandedBackError when its manager's shutdown ended it.
   */
  run(req: PoolRunRequest): Promise<HandlerResult> {
    if (this.closed || req.shutdown.aborted) return Promise.reject(new RunHandedBackError());
    return new Promise<HandlerResult>((resolve, reject) => {
      const run: Run = { id: this.nextRun++, req, resolve, reject, timedOut: false, handedBack: false, timers: [], cleanup: [] };
      this.book.submit(run);
      this.whileWaiting(run);
      this.pump();
    });
  }

  /** Kills every worker (the manager process is ending); runs still waiting end without a result. */
  async close(): Promise<void> {
    this.closed = true;
    for (let run = this.book.takeOldest(); run; run = this.book.takeOldest()) this.settle(run, null);
    // Runs under way when the process ends have no result: their deliveries are handed back.
    for (const w of this.workers) for (const r of w.runs) r.handedBack = true;
    const exits = [...this.workers].map((w) => new Promise<void>((resolve) => {
      if (w.child.exitCode !== null || w.child.signalCode !== null) resolve();
      else w.child.once('exit', () => resolve());
    }));
    for (const w of this.workers) killGroup(w.child.pid);
    await Promise.all(exits);
  }

  /** A run waiting for a worker when its manager stops never starts. */
  private whileWaiting(run: Run): void {
    const withdraw = (): void => {
      if (this.book.withdraw(run)) this.settle(run, null);
    };
    run.req.shutdown.addEventListener('abort', withdraw, { once: true });
    run.cleanup.push(() => run.req.shutdown.removeEventListener('abort', withdraw));
  }

  private pump(): void {
    const now = Date.now();
    const canQueue = (w: Worker): boolean => now - w.headSince < PIPELINE_WINDOW_MS && w.runs.every((r) => this.isShort(r.req.task.type));
    const packs = (run: Run): boolean => (this.runMs.get(run.req.task.type) ?? Infinity) < TINY_RUN_MS;
    // One at a time: a run sent to a worker has started there (or waits in it), which the next choice sees.
    for (let pair = this.book.assignNext(canQueue, packs); pair; pair = this.book.assignNext(canQueue, packs)) this.dispatch(...pair);
    if (this.closed) return;
    if (this.book.toFork() > 0) this.forkWorker();
  }

  private forkWorker(): ChildProcess {
    const child = fork(this.script, [this.o.handlersDir], {
      execArgv: this.execArgv, detached: true, stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'json',
    });
    const worker: Worker = { child, ready: false, runs: [], headSince: 0, stderr: '', outbox: [] };
    this.workers.add(worker);
    this.book.forked();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      // The handler's own stderr is the manager's, as it was in-process; its tail says why a process died.
      if (this.o.stderr) this.o.stderr(chunk);
      else process.stderr.write(chunk);
      worker.stderr = (worker.stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.on('message', (raw: unknown) => this.onMessage(worker, raw));
    child.on('error', (err) => this.o.logger.warn({ err, pid: child.pid }, 'handler worker process error'));
    child.once('exit', (code, signal) => this.onExit(worker, code, signal));
    return child;
  }

  private onMessage(worker: Worker, raw: unknown): void {
    for (const msg of parseBatch(raw, parseFromWorker)) this.onOne(worker, msg);
  }

  private onOne(worker: Worker, msg: FromWorker): void {
    if (msg.kind === 'ready') {
      if (worker.ready) return;
      worker.ready = true;
      this.book.started(worker);
      this.pump();
    } else if (msg.kind === 'log') {
      worker.runs.find((r) => r.id === msg.run)?.req.onLog(msg.line);
    } else if (worker.runs[0]?.id === msg.run) {
      this.onResult(worker, msg);
    }
  }

  /** The worker's current run returned: the next one held in the worker starts. */
  private onResult(worker: Worker, msg: ResultMessage): void {
    const run = worker.runs.shift() as Run;
    this.recordDuration(run.req.task.type, Date.now() - worker.headSince);
    const { payload, errnr, errmsg } = msg;
    this.settle(run, run.timedOut ? this.timeoutResult(run, false) : { payload, errnr, errmsg });
    if (worker.runs.length > 0) this.startHead(worker);
    if (this.closed) return;
    this.book.freed(worker);
    this.pump();
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker);
    this.book.exited(worker, !worker.ready);
    const [run, ...held] = worker.runs;
    worker.runs = [];
    if (run) {
      this.o.logger.warn({ pid: worker.child.pid, code, signal, taskId: run.req.task.id }, 'a handler\'s worker process ended during its run');
      const died = { payload: null, errnr: ERRNR_HANDLER_DIED, errmsg: describeDeath(code, signal, worker.stderr, this.o.maxHeapMb) };
      this.settle(run, run.timedOut ? this.timeoutResult(run, true) : died);
    } else if (!worker.ready && !this.closed) {
      // It could not even start (a broken handlers folder, no memory): the oldest waiting run says why,
      // rather than every run waiting for workers that never come.
      const oldest = this.book.takeOldest();
      if (oldest) this.settle(oldest, { payload: null, errnr: ERRNR_HANDLER_DIED, errmsg: `the handler's process could not start: ${describeDeath(code, signal, worker.stderr, this.o.maxHeapMb)}` });
    }
    // The runs that waited in it never started: to another worker, or handed back when stopping.
    const again: Run[] = [];
    for (const r of held) {
      this.undoDispatch(r);
      if (this.closed || r.handedBack || r.req.shutdown.aborted) this.settle(r, null);
      else {
        this.whileWaiting(r);
        again.push(r);
      }
    }
    this.book.requeue(again);
    if (this.closed) return;
    // A run's process that died is replaced at once, so that the pool stays warm.
    if (run) this.forkWorker();
    this.pump();
  }

  private isShort(type: string): boolean {
    return (this.runMs.get(type) ?? Infinity) < SHORT_RUN_MS;
  }

  private recordDuration(type: string, ms: number): void {
    const before = this.runMs.get(type);
    this.runMs.set(type, before === undefined ? ms : before * 0.8 + ms * 0.2);
  }

  private timeoutResult(run: Run, killed: boolean): HandlerResult {
    const after = `handler timed out after ${run.req.timeoutMs / 1000} s`;
    return {
      payload: null, errnr: ERRNR_HANDLER_TIMEOUT,
      errmsg: killed ? `${after}; its process was killed ${this.o.killGraceMs / 1000} s later (manager.kill_grace)` : after,
    };
  }

  /**
   * Queues a message for a worker: what is queued in one turn of the event loop (the runs of a burst of
   * deliveries, their aborts) goes in one write, in order, so that the worker wakes once for all of them.
   */
  private send(worker: Worker, message: ToWorker): void {
    worker.outbox.push(message);
    if (worker.outbox.length === 1) setImmediate(() => this.flush(worker));
  }

  private flush(worker: Worker): void {
    const batch = worker.outbox;
    worker.outbox = [];
    // A worker that just died: its exit ends the runs.
    if (batch.length > 0 && worker.child.connected) worker.child.send(batch, () => undefined);
  }

  /** Sends a run to a worker; it starts there at once, or after the runs the worker holds already. */
  private dispatch(worker: Worker, run: Run): void {
    const { req } = run;
    // No longer waiting in the book: the withdrawal on shutdown is the worker's business now.
    this.undoDispatch(run);
    worker.runs.push(run);
    this.send(worker, { kind: 'run', run: run.id, task: req.task, endpoint: req.endpoint, attempt: req.attempt, round: req.round });
    const abort = (cause: AbortCause): void => {
      if (worker.runs.includes(run)) this.send(worker, { kind: 'abort', run: run.id, cause });
    };
    const listen = (signal: AbortSignal, fn: () => void): void => {
      if (signal.aborted) {
        fn();
        return;
      }
      signal.addEventListener('abort', fn, { once: true });
      run.cleanup.push(() => signal.removeEventListener('abort', fn));
    };
    listen(req.cancel, () => abort('cancelled'));
    listen(req.shutdown, () => {
      run.handedBack = true;
      abort('shutdown');
    });
    // Killing the process ends the runs held behind this one too: on a shutdown, they are handed back.
    listen(req.kill, () => {
      if (worker.runs.includes(run)) killGroup(worker.child.pid);
    });
    if (worker.runs.length === 1) this.startHead(worker);
  }

  /** The worker's first run has started: its timeout counts from now. */
  private startHead(worker: Worker): void {
    const run = worker.runs[0];
    worker.stderr = '';
    worker.headSince = Date.now();
    run.req.onStart?.();
    run.timers.push(setTimeout(() => {
      run.timedOut = true;
      if (worker.runs[0] === run) this.send(worker, { kind: 'abort', run: run.id, cause: 'timeout' });
      run.timers.push(setTimeout(() => {
        if (worker.runs[0] === run) killGroup(worker.child.pid);
      }, this.o.killGraceMs));
    }, run.req.timeoutMs));
  }

  private undoDispatch(run: Run): void {
    for (const t of run.timers) clearTimeout(t);
    for (const c of run.cleanup) c();
    run.timers = [];
    run.cleanup = [];
  }

  /** Ends a run: `result` null (or a shutdown's run) rejects, so that its delivery is handed back. */
  private settle(run: Run, result: HandlerResult | null): void {
    this.undoDispatch(run);
    if (result === null || run.handedBack || run.req.shutdown.aborted) run.reject(new RunHandedBackError());
    else run.resolve(result);
  }
}
