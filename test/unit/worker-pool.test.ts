import assert from 'node:assert/strict';
import path from 'node:path';
import { misbehaviourOf } from '../../handlers/misbehave';
import type { HandlerTask } from '../../manager/handler';
import { PoolBook } from '../../manager/pool-book';
import { abortReason, describeDeath, parseBatch, parseFromWorker, parseToWorker } from '../../manager/pool-messages';
import { PoolRunRequest, RunHandedBackError, WorkerPool } from '../../manager/worker-pool';
import { createLogger } from '../../lib/logger';
import { ERRNR_HANDLER_DIED, ERRNR_HANDLER_THREW, ERRNR_HANDLER_TIMEOUT } from '../../protocol/wire';

const task: HandlerTask = { id: 7, identifier: 'a', type: 'worker', payload: { sleep: 0 }, endpoints: ['e'], start_time: new Date().toISOString() };

describe('worker pool messages', function () {
  it('accepts the messages of each side and refuses what is not one', function () {
    assert.deepEqual(parseFromWorker({ kind: 'ready' }), { kind: 'ready' });
    assert.deepEqual(parseFromWorker({ kind: 'log', run: 3, line: 'x' }), { kind: 'log', run: 3, line: 'x' });
    assert.deepEqual(parseFromWorker({ kind: 'result', run: 3, payload: { a: 1 }, errnr: 0, errmsg: null }), { kind: 'result', run: 3, payload: { a: 1 }, errnr: 0, errmsg: null });
    assert.equal(parseFromWorker({ kind: 'result', run: 3, errnr: '0', errmsg: null }), null);
    assert.equal(parseFromWorker({ kind: 'log', run: -1, line: 'x' }), null);
    assert.equal(parseFromWorker('ready'), null);
    assert.equal(parseFromWorker({ kind: 'other' }), null);
    assert.deepEqual(parseToWorker({ kind: 'abort', run: 1, cause: 'timeout' }), { kind: 'abort', run: 1, cause: 'timeout' });
    assert.equal(parseToWorker({ kind: 'abort', run: 1, cause: 'whim' }), null);
    assert.deepEqual(parseToWorker({ kind: 'run', run: 2, task, endpoint: 'e', attempt: 1, round: 0 }), { kind: 'run', run: 2, task, endpoint: 'e', attempt: 1, round: 0 });
    assert.equal(parseToWorker({ kind: 'run', run: 2, task: null, endpoint: 'e', attempt: 1, round: 0 }), null);
    assert.equal(abortReason('cancelled').message, 'task cancelled');
  });

  it('reads a batch in order, dropping what is not a message', function () {
    const batch = [{ kind: 'run', run: 2, task, endpoint: 'e', attempt: 1, round: 0 }, { kind: 'abort', run: 2, cause: 'whim' }, { kind: 'abort', run: 2, cause: 'cancelled' }];
    assert.deepEqual(parseBatch(batch, parseToWorker).map((m) => m.kind), ['run', 'abort']);
    assert.deepEqual(parseBatch({ kind: 'ready' }, parseFromWorker), [{ kind: 'ready' }], 'a message alone is a batch of one');
    assert.deepEqual(parseBatch('nonsense', parseFromWorker), []);
  });

  it('names the exit code, the signal, the last line of stderr, and an out-of-memory death as such', function () {
    assert.equal(describeDeath(3, null, '', 512), 'the handler\'s process exited with code 3');
    assert.equal(describeDeath(null, 'SIGSEGV', '', 512), 'the handler\'s process was killed by SIGSEGV');
    assert.equal(describeDeath(1, null, 'Error: boom\n    at x\nthrown from a timer\n\n', 512), 'the handler\'s process exited with code 1: thrown from a timer');
    assert.match(describeDeath(null, 'SIGABRT', 'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0x1', 64),
      /ran out of memory \(manager\.handler_max_heap_mb 64\) and was killed by SIGABRT/);
  });

  it('reads the worker handler\'s misbehaviours, naming a bad field', function () {
    assert.deepEqual(misbehaviourOf({ sleep: 1, exit: 3, spin: 0.5, leak: true }), { exit: 3, spin: 0.5, leak: true });
    assert.deepEqual(misbehaviourOf(null), {});
    assert.throws(() => misbehaviourOf({ exit: 256 }), /payload\.exit must be a whole number from 0 to 255/);
    assert.throws(() => misbehaviourOf({ spin: 'long' }), /payload\.spin must be a number/);
    assert.throws(() => misbehaviourOf({ leak: 1 }), /payload\.leak must be true or false/);
  });
});

describe('worker pool bookkeeping', function () {
  it('forks one worker at a time while runs wait, up to its size, and pairs runs with idle workers oldest first', function () {
    const book = new PoolBook<string, number>(2);
    book.submit(1);
    book.submit(2);
    book.submit(3);
    assert.equal(book.toFork(), 1);
    book.forked();
    assert.equal(book.toFork(), 0, 'one is starting');
    assert.deepEqual(book.assign(), [], 'no worker is ready yet');
    book.started('a');
    assert.deepEqual(book.assign(), [['a', 1]]);
    assert.equal(book.toFork(), 1);
    book.forked();
    book.started('b');
    assert.deepEqual(book.assign(), [['b', 2]]);
    assert.equal(book.toFork(), 0, 'the size is reached');
    assert.equal(book.waitingCount, 1);
    book.freed('a');
    assert.deepEqual(book.assign(), [['a', 3]]);
  });

  it('queues runs in busy workers, the least loaded first, up to the depth, only where allowed, before forking', function () {
    const book = new PoolBook<string, number>(2, 3);
    book.forked();
    book.started('a');
    book.submit(1);
    book.submit(2);
    book.submit(3);
    book.submit(4);
    assert.deepEqual(book.assign(() => true), [['a', 1], ['a', 2], ['a', 3]], 'a young run: the next ones wait in its worker');
    assert.equal(book.toFork(), 1, 'run 4 finds no room: a second worker');
    book.forked();
    book.started('b');
    for (let i = 5; i <= 7; i++) book.submit(i);
    assert.deepEqual(book.assign((w) => w === 'a'), [['b', 4]], 'b is idle; a is full; b may not queue');
    assert.deepEqual(book.assign(() => true), [['b', 5], ['b', 6]]);
    assert.equal(book.waitingCount, 1);
    book.exited('b', false);
    book.requeue([5, 6]);
    assert.deepEqual(book.assign(() => true), [], 'a is full and b is gone');
    assert.equal(book.toFork(), 1);
    assert.throws(() => new PoolBook(1, 0), /a pipeline of 0 runs/);
  });

  it('packs runs that return at once behind the busiest worker that may queue, rather than waking an idle one each', function () {
    const book = new PoolBook<string, number>(3, 4);
    for (const w of ['a', 'b', 'c']) {
      book.forked();
      book.started(w);
    }
    for (let i = 1; i <= 6; i++) book.submit(i);
    const tiny = (run: number): boolean => run !== 6;
    assert.deepEqual(book.assign(() => true, tiny), [['a', 1], ['a', 2], ['a', 3], ['a', 4], ['b', 5], ['c', 6]],
      'a fills to the depth, then b; run 6 is not tiny and takes the idle worker');
    for (let i = 7; i <= 8; i++) book.submit(i);
    assert.deepEqual(book.assign(() => false, () => true), [], 'no worker may queue: the tiny runs wait');
  });

  it('frees a slot only when the worker exits, and forgets an idle worker that exits', function () {
    const book = new PoolBook<string, number>(1);
    book.forked();
    book.started('a');
    assert.deepEqual(book.assign(), []);
    book.submit(1);
    assert.deepEqual(book.assign(), [['a', 1]]);
    book.submit(2);
    assert.equal(book.toFork(), 0, 'the busy worker still holds its slot');
    book.exited('a', false);
    assert.equal(book.toFork(), 1);
    assert.equal(book.liveCount, 0);
    book.forked();
    book.exited('b', true);
    assert.equal(book.toFork(), 1, 'a worker that died starting no longer counts as coming');
    assert.equal(book.withdraw(2), true);
    assert.equal(book.withdraw(2), false);
    assert.equal(book.toFork(), 0);
    assert.throws(() => new PoolBook(0), /a pool of 0 workers/);
  });
});

describe('worker pool processes', function () {
  this.timeout(20_000);
  let pool: WorkerPool;
  const logger = createLogger({}, 'error');
  const signal = (): AbortSignal => new AbortController().signal;
  const req = (payload: unknown, more: Partial<PoolRunRequest> = {}): PoolRunRequest => ({
    task: { ...task, payload }, endpoint: 'e', attempt: 1, round: 0, timeoutMs: 5000, cancel: signal(), shutdown: signal(), kill: signal(), onLog: () => undefined, ...more,
  });

  beforeEach(function () {
    pool = new WorkerPool({ size: 2, handlersDir: path.join(__dirname, '..', '..', 'handlers'), maxHeapMb: 64, killGraceMs: 300, logger, stderr: () => undefined });
  });
  afterEach(async function () {
    await pool.close();
  });

  it('runs handlers in reused processes, and a run\'s exit fails only that run', async function () {
    assert.deepEqual(await pool.run(req({ sleep: 0 })), { payload: { yeah: 1234123, yiya: 'yippie' }, errnr: 0, errmsg: null });
    const before = pool.pids;
    for (let i = 0; i < 20; i++) await pool.run(req({ sleep: 0 }));
    assert.deepEqual(pool.pids, before, 'no run forked a process of its own');
    const [exited, fine, bad] = await Promise.all([pool.run(req({ sleep: 0, exit: 3 })), pool.run(req({ sleep: 0.2 })), pool.run(req({ exit: 'x' }))]);
    assert.deepEqual(exited, { payload: null, errnr: ERRNR_HANDLER_DIED, errmsg: 'the handler\'s process exited with code 3' });
    assert.equal(fine.errnr, 0);
    assert.deepEqual(bad, { payload: null, errnr: ERRNR_HANDLER_THREW, errmsg: 'payload.exit must be a whole number from 0 to 255' });
  });

  it('kills a spinning handler after its timeout and the grace, ends an out-of-memory run alone', async function () {
    const [spun, leaked] = await Promise.all([pool.run(req({ sleep: 0, spin: 30 }, { timeoutMs: 300 })), pool.run(req({ sleep: 0, leak: true }))]);
    assert.equal(spun.errnr, ERRNR_HANDLER_TIMEOUT);
    assert.match(spun.errmsg ?? '', /killed 0\.3 s later/);
    assert.equal(leaked.errnr, ERRNR_HANDLER_DIED);
    assert.match(leaked.errmsg ?? '', /ran out of memory/);
    assert.equal((await pool.run({ ...req(null), task: { ...task, type: 'backup', payload: { sleep: 0 } } })).errnr, 32);
    assert.equal((await pool.run(req({ sleep: 0 }))).errnr, 0, 'the pool replaced its dead workers');
  });

  it('ends a run without a result on shutdown, and kills it when told', async function () {
    const shutdown = new AbortController();
    const kill = new AbortController();
    const polite = pool.run(req({ sleep: 30 }, { shutdown: shutdown.signal, kill: kill.signal }));
    const spinning = pool.run(req({ sleep: 0, spin: 30 }, { shutdown: shutdown.signal, kill: kill.signal }));
    const waiting = pool.run(req({ sleep: 0 }, { shutdown: shutdown.signal, kill: kill.signal }));
    await new Promise((r) => setTimeout(r, 500));
    shutdown.abort();
    await assert.rejects(polite, RunHandedBackError);
    await assert.rejects(waiting, RunHandedBackError);
    kill.abort();
    await assert.rejects(spinning, RunHandedBackError);
  });
});
