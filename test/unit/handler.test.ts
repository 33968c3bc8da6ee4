import assert from 'node:assert/strict';
import {
  ERRNR_BAD_RESULT, ERRNR_HANDLER_THREW, ERRNR_HANDLER_TIMEOUT, HandlerModule, HandlerTask, MAX_ERRMSG_CHARS, runHandler,
} from '../../manager/handler';
import { loadHandlers } from '../../handlers';

const task: HandlerTask = { id: 1, identifier: 'a', type: 'worker', payload: { sleep: 0 }, endpoints: ['e'], start_time: new Date().toISOString() };

describe('handlers', function () {
  it('runs the seed worker and backup', async function () {
    const handlers = loadHandlers(['worker', 'backup']);
    assert.deepEqual(await runHandler(handlers.get('worker')!, task, 'e', 1, 1000), { payload: { yeah: 1234123, yiya: 'yippie' }, errnr: 0, errmsg: null });
    assert.deepEqual(await runHandler(handlers.get('backup')!, task, 'e', 1, 1000), { payload: null, errnr: 32, errmsg: 'could not backup!' });
  });

  it('turns a throw into errnr 1 with the message', async function () {
    const mod: HandlerModule = { handleTask: () => { throw new Error('disk full'); } };
    assert.deepEqual(await runHandler(mod, task, 'e', 1, 1000), { payload: null, errnr: ERRNR_HANDLER_THREW, errmsg: 'disk full' });
    const rejecting: HandlerModule = { handleTask: async () => Promise.reject(new Error('async boom')) };
    assert.equal((await runHandler(rejecting, task, 'e', 1, 1000)).errmsg, 'async boom');
  });

  it('makes whatever a handler sets storable', async function () {
    const run = (set: (r: { payload: unknown; errnr: unknown; errmsg: unknown }) => void) =>
      runHandler({ handleTask: (_t, r) => set(r as never) }, task, 'e', 1, 1000);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const notJson = await run((r) => { r.payload = circular; });
    assert.equal(notJson.errnr, ERRNR_BAD_RESULT);
    assert.equal(notJson.payload, null);
    assert.match(String(notJson.errmsg), /not JSON/);
    assert.equal((await run((r) => { r.payload = { n: 10n }; })).errnr, ERRNR_BAD_RESULT);
    assert.equal((await run((r) => { r.errnr = 2 ** 40; })).errnr, ERRNR_HANDLER_THREW);
    assert.equal((await run((r) => { r.errnr = 1.5; })).errnr, ERRNR_HANDLER_THREW);
    assert.equal((await run((r) => { r.errnr = -7; })).errnr, -7);
    assert.equal(String((await run((r) => { r.errmsg = 'x'.repeat(100_000); })).errmsg).length, MAX_ERRMSG_CHARS + 1);
    assert.deepEqual((await run((r) => { r.payload = { a: undefined, b: () => 1, c: 1 }; })).payload, { c: 1 });
  });

  it('gives the timeout its own errnr and aborts the handler', async function () {
    let aborted = false;
    const mod: HandlerModule = {
      handleTask: (_t, r) => new Promise<void>((resolve) => r.signal.addEventListener('abort', () => { aborted = true; resolve(); })),
    };
    const result = await runHandler(mod, task, 'e', 1, 50);
    assert.equal(result.errnr, ERRNR_HANDLER_TIMEOUT);
    assert.ok(aborted);
  });

  it('loads only configured task types that have a module', function () {
    assert.throws(() => loadHandlers(['nosuch']), /no handler module nosuch/);
    assert.throws(() => loadHandlers(['../scripts/api']), /not a task type name/);
  });
});
