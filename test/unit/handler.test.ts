import assert from 'node:assert/strict';
import { ERRNR_HANDLER_THREW, ERRNR_HANDLER_TIMEOUT, HandlerModule, HandlerTask, runHandler } from '../../manager/handler';
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
