import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Harness } from '../support/harness';

/**
 * The per-type limit (`manager.type_concurrency`): each run of the command appends `start` to a file, sleeps,
 * then appends `end`; the file's order (not timestamps) tells whether two runs were under way at once. The
 * same command as a type without a limit shows that the check sees an overlap when there is one.
 */
const appender = (file: string): string[] => [`echo start >> ${file}; sleep 0.4; echo end >> ${file}`];

describe('per task type concurrency (rabbitmq)', function () {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tasker-type-concurrency-'));
  const serialFile = path.join(tmp, 'serial');
  const parallelFile = path.join(tmp, 'parallel');
  const h = new Harness({
    backend: 'rabbitmq',
    env: {
      TASKER_TASK_TYPES: JSON.stringify([
        'worker',
        { name: 'one-at-a-time', shell: true, command: appender(serialFile) },
        { name: 'side-by-side', shell: true, command: appender(parallelFile) },
      ]),
      TASKER_MANAGER__ENDPOINTS: '[]', TASKER_MANAGER__TYPE_CONCURRENCY: '{"one-at-a-time": 1, "worker": 2}',
    },
  });
  const EP = 'tc1';

  before(async function () {
    await h.setup(this);
    await h.startSystem([{ name: EP, task_types: ['worker', 'one-at-a-time', 'side-by-side'] }]);
  });

  after(async function () {
    await h.teardown();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('never runs two tasks of a type limited to 1 at once, while a type without a limit runs them side by side', async function () {
    this.timeout(90_000);
    const send = async (type: string, identifier: string): Promise<void> => {
      const res = await h.post(type, { identifier, payload: {}, endpoints: [EP] });
      assert.equal(res.status, 201, JSON.stringify(res.json));
    };
    const ids = [1, 2, 3, 4];
    await Promise.all(ids.flatMap((i) => [send('one-at-a-time', `serial-${i}`), send('side-by-side', `parallel-${i}`)]));
    for (const i of ids) {
      await h.waitForStatus('one-at-a-time', `serial-${i}`, ['DONE']);
      await h.waitForStatus('side-by-side', `parallel-${i}`, ['DONE']);
    }
    const lines = (file: string): string[] => readFileSync(file, 'utf8').trim().split('\n');
    assert.deepEqual(lines(serialFile), ids.flatMap(() => ['start', 'end']), 'each run ended before the next started');
    const parallel = lines(parallelFile);
    assert.equal(parallel.length, 8);
    assert.notDeepEqual(parallel, ids.flatMap(() => ['start', 'end']), 'without a limit, runs overlap (so the check above can see an overlap)');
  });

  it('refuses a limit on a type that is not declared, naming the key, and does not start', async function () {
    const p = h.spawnManager('tc2', [], { TASKER_MANAGER__TYPE_CONCURRENCY: '{"nosuch": 1}' });
    const code = await p.exited;
    assert.notEqual(code, 0);
    assert.match(p.raw.join('\n'), /manager\.type_concurrency\.nosuch.*'nosuch' is not in task_types/);
  });
});
