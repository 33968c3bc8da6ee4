import path from 'node:path';
import { format } from 'node:util';
import { TASK_TYPE_PATTERN } from '../protocol/names';
import { ERRNR_HANDLER_THREW, HandlerModule, HandlerResponse, isHandlerModule, storableResult } from './handler';
import { abortReason, FromWorker, parseBatch, parseToWorker, RunMessage } from './pool-messages';

/**
 * A worker process of an endpoint manager's pool (manager/worker-pool.ts), started with
 * `child_process.fork(pool-worker.js, [handlersDir])`: runs one handler at a time, as the manager asks over
 * IPC, and stays up for the next one. It enforces no timeout itself: the manager aborts the run's signal,
 * and kills this process when the handler outlives the grace; whatever goes wrong here (an exit, a throw
 * from a timer, running out of heap) ends this process and only the run it had.
 */

const handlersDir = process.argv[2];
const modules = new Map<string, HandlerModule>();
/** Every run received and not finished (the one running and those held behind it), by the pool's number. */
const aborts = new Map<number, LazyAbort>();
/** Runs held until the one running returns: one handler at a time, in the order sent. */
const held: RunMessage[] = [];
let busy = false;

/**
 * A run's `response.signal`, made only when its handler reads it (most short handlers never do, and an
 * AbortController is a good part of a short run's cost); an abort before that is kept and applied then.
 */
class LazyAbort {
  private controller: AbortController | null = null;
  private reason: Error | null = null;

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.reason !== null) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    if (this.controller !== null) this.controller.abort(reason);
    else this.reason ??= reason;
  }
}

function send(message: FromWorker): void {
  process.send?.(message);
}

/**
 * The type's module, loaded on its first run. The manager loaded and checked them all at its start (the
 * errors of handlers/index.ts name the config key); here a name that is not a task type is refused all the same.
 */
function moduleOf(type: string): HandlerModule {
  let mod = modules.get(type);
  if (!mod) {
    if (!TASK_TYPE_PATTERN.test(type)) throw new Error(`'${type}' is not a task type name`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded: unknown = require(path.join(handlersDir, type));
    if (!isHandlerModule(loaded)) throw new Error(`handler module ${type} in ${handlersDir} does not export handleTask(task, response)`);
    mod = loaded;
    modules.set(type, mod);
  }
  return mod;
}

async function run(msg: RunMessage): Promise<void> {
  const abort = aborts.get(msg.run) ?? new LazyAbort();
  const log = (...args: unknown[]): void => {
    for (const line of format(...args).split('\n')) send({ kind: 'log', run: msg.run, line });
  };
  const response: HandlerResponse = {
    endpoint: msg.endpoint, attempt: msg.attempt, round: msg.round, get signal() { return abort.signal; }, log, payload: null, errnr: 0, errmsg: null,
  };
  let result;
  try {
    await moduleOf(msg.task.type).handleTask(msg.task, response);
    // The IPC's own JSON makes the manager's copy of the payload: no copy here.
    result = storableResult(response.payload, response.errnr, response.errmsg, false);
  } catch (err) {
    result = storableResult(null, ERRNR_HANDLER_THREW, err instanceof Error ? err.message : String(err));
  } finally {
    aborts.delete(msg.run);
  }
  send({ kind: 'result', run: msg.run, ...result });
}

/**
 * Runs the next held run. Through setImmediate: the messages that arrived meanwhile (an abort of a held
 * run) are read first, so that its handler starts with its signal already aborted.
 */
function next(): void {
  const msg = held.shift();
  if (msg === undefined) {
    busy = false;
    return;
  }
  busy = true;
  void run(msg).finally(() => setImmediate(next));
}

process.on('message', (raw: unknown) => {
  for (const msg of parseBatch(raw, parseToWorker)) {
    if (msg.kind === 'run') {
      aborts.set(msg.run, new LazyAbort());
      held.push(msg);
    } else {
      aborts.get(msg.run)?.abort(abortReason(msg.cause));
    }
  }
  // The whole batch is read (an abort in it of a run it holds applies before that run starts): an idle worker starts at once.
  if (!busy) next();
});
// The manager is gone (killed, crashed): nothing would take this process's results.
process.on('disconnect', () => process.exit(0));
send({ kind: 'ready' });
