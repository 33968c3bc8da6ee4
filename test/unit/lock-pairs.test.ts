import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { Completion } from '../../api/storage/completion';
import { createDataSource, migrate, transaction } from '../../api/storage/database';
import { History } from '../../api/storage/history';
import { ResponseRows } from '../../api/storage/response-rows';
import { TaskStore } from '../../api/storage/task-store';
import { TLS_OFF } from '../../config/schema';

/**
 * What the collector's lock reads (SQLite): a batch of events names (task, endpoint) pairs, and only
 * those rows are read, not every named endpoint's row of every named task (tasks × endpoints rows for
 * a few broadcasts to a large fleet).
 */
describe('Completion.lockPairs (SQLite)', function () {
  let dir: string;
  let ds: DataSource;
  let completion: Completion;
  let ids: number[];
  const fleet = ['a', 'b', 'c', 'd'];

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-lock-pairs-'));
    ds = createDataSource({ uri: `sqlite:${path.join(dir, 't.sqlite')}`, verbose: false, admin_uri: '', pool_size: 1, connect_timeout: 1, query_timeout: 10, tls: TLS_OFF }, dir);
    await ds.initialize();
    await migrate(ds);
    const rows = new ResponseRows(ds);
    const history = new History(ds);
    await new TaskStore(ds, history, () => undefined, rows).createMany([1, 2, 3].map((i) => ({
      type: 'worker', identifier: `t-${i}`, payload: null, endpoints: fleet, expected: fleet, requestHash: 'h', timeout: 3600, actor: null, rollout: null,
    })));
    ids = (await ds.query('SELECT id FROM task ORDER BY id') as { id: number }[]).map((r) => Number(r.id));
    completion = new Completion(ds, history, () => undefined, rows);
  });

  afterEach(async function () {
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the rows of the pairs named, and the tasks of them that exist', async function () {
    const [t1, t2, t3] = ids;
    const locked = await transaction(ds, (em) => completion.lockPairs(em, [
      { taskId: t1, endpoint: 'a' }, { taskId: t2, endpoint: 'b' }, { taskId: t3, endpoint: 'c' }, { taskId: t1, endpoint: 'b' },
      { taskId: t2, endpoint: 'nobody' }, { taskId: t3 + 100, endpoint: 'a' },
    ], new Date()));
    assert.deepEqual([...locked.tasks.keys()].sort((x, y) => x - y), [t1, t2, t3]);
    const read = [...locked.rows.values()].map((r) => `${r.taskId}:${r.endpoint}`).sort();
    assert.deepEqual(read, [`${t1}:a`, `${t1}:b`, `${t2}:b`, `${t3}:c`].sort());
    assert.equal(locked.row(t2, 'nobody'), undefined);
    assert.equal(locked.row(t1, 'a')?.state, 'pending');
  });

  it('reads every named endpoint of every task with lock(), as an operation on one endpoint across tasks needs', async function () {
    const locked = await transaction(ds, (em) => completion.lock(em, ids, ['a', 'b'], new Date()));
    assert.equal(locked.rows.size, ids.length * 2);
  });
});
