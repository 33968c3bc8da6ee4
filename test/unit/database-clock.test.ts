import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { createDataSource, databaseNow } from '../../api/storage/database';
import { DatabaseClock } from '../../api/storage/database-clock';
import { TLS_OFF } from '../../config/schema';

describe('the database clock estimate', function () {
  let dir: string;
  let ds: DataSource;
  let reads: number;

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-clock-'));
    ds = createDataSource({ uri: `sqlite:${path.join(dir, 't.sqlite')}`, verbose: false, admin_uri: '', pool_size: 1, connect_timeout: 1, query_timeout: 10, tls: TLS_OFF }, dir);
    await ds.initialize();
    reads = 0;
    const query = ds.query.bind(ds);
    ds.query = ((sql: string, params?: unknown[]) => {
      if (/strftime/.test(sql)) reads++;
      return query(sql, params);
    }) as typeof ds.query;
  });

  afterEach(async function () {
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the database time, read once for concurrent callers and again only once the sample is old', async function () {
    const clock = new DatabaseClock(ds, 200);
    const first = await Promise.all(Array.from({ length: 20 }, () => clock.now()));
    assert.equal(reads, 1, 'concurrent callers share one reading');
    const direct = await databaseNow(ds);
    for (const t of first) assert.ok(Math.abs(direct.getTime() - t.getTime()) < 100, `${t.toISOString()} vs ${direct.toISOString()}`);
    reads = 0;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const carried = await clock.now();
    assert.equal(reads, 0, 'a fresh sample is carried forward');
    assert.ok(carried.getTime() >= first[0].getTime() + 40, 'time moves on with the monotonic clock');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await clock.now();
    assert.equal(reads, 1, 'an old sample is taken again');
  });
});
