import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { EndpointService } from '../../api/endpoint-service';
import { createDataSource, migrate, transaction } from '../../api/storage/database';
import { EndpointRegistry } from '../../api/storage/endpoint-registry';
import { parseSelector } from '../../protocol/label-selector';
import type { PresenceEvent } from '../../protocol/wire';
import { TLS_OFF } from '../../config/schema';

describe('the endpoint registry\'s labels and facts (SQLite)', function () {
  let dir: string;
  let ds: DataSource;
  let registry: EndpointRegistry;

  const event = (endpoint: string, types: string[], labels?: Record<string, string>, facts?: PresenceEvent['facts']): PresenceEvent => ({
    kind: 'heartbeat', endpoint, task_types: types, time: new Date().toISOString(), ...(labels ? { labels } : {}), ...(facts ? { facts } : {}),
  });
  const record = (events: PresenceEvent[], at: string): Promise<void> => transaction(ds, (em) => registry.record(em, events, new Date(at)));

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-registry-'));
    ds = createDataSource({ uri: `sqlite:${path.join(dir, 't.sqlite')}`, verbose: false, admin_uri: '', pool_size: 1, connect_timeout: 1, query_timeout: 10, tls: TLS_OFF }, dir);
    await ds.initialize();
    await migrate(ds);
    registry = new EndpointRegistry(ds);
  });

  afterEach(async function () {
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the labels and facts of the latest event, the facts it knows only, and {} for an endpoint that sent none', async function () {
    await record([event('web1', ['worker', 'backup'], { role: 'web' }, { os: 'linux', hostname: 'h1', later: 'x' } as PresenceEvent['facts']), event('old1', ['worker'])], '2026-11-24T10:00:00Z');
    let listed = await registry.list('', 10);
    assert.deepEqual(listed.map((e) => [e.name, e.labels, e.facts]), [['old1', {}, {}], ['web1', { role: 'web' }, { hostname: 'h1', os: 'linux' }]]);
    // Started again serving one type, relabelled: the row of the type it no longer serves says what its earlier life said.
    await record([event('web1', ['worker'], { role: 'api', region: 'eu' }, { os: 'linux' })], '2026-11-24T10:00:05Z');
    listed = await registry.list('', 10);
    assert.deepEqual(listed.find((e) => e.name === 'web1')?.labels, { role: 'api', region: 'eu' });
    assert.deepEqual(listed.find((e) => e.name === 'web1')?.facts, { os: 'linux' });
    // An older heartbeat arriving late changes nothing; a newer one without labels clears them.
    await record([event('web1', ['worker'], { role: 'late' })], '2026-11-24T10:00:01Z');
    assert.deepEqual((await registry.get('web1'))?.labels, { role: 'api', region: 'eu' });
    await record([event('web1', ['worker', 'backup'])], '2026-11-24T10:00:09Z');
    assert.deepEqual((await registry.get('web1'))?.labels, {});
  });

  it('resolves a selector to the live endpoints of the type, labels winning over facts of the same name', async function () {
    const now = await registry.now();
    const at = (ago: number): string => new Date(now.getTime() - ago * 1000).toISOString();
    await record([
      event('a1', ['worker'], { role: 'web' }, { os: 'linux' }),
      event('a2', ['worker', 'backup'], { role: 'web', os: 'custom' }, { os: 'linux' }),
      event('a3', ['backup'], { role: 'web' }, { os: 'linux' }),
    ], at(1));
    await record([event('gone', ['worker'], { role: 'web' }, { os: 'linux' })], at(120));
    const service = new EndpointService(registry, null as never, null as never, 30_000, 60_000, null as never);
    assert.deepEqual(await service.resolve('worker', parseSelector('role=web')), { matched: ['a1', 'a2'], live: 2 });
    assert.deepEqual(await service.resolve('worker', parseSelector('os=linux')), { matched: ['a1'], live: 2 });
    assert.deepEqual(await service.resolve('worker', parseSelector('os=custom')), { matched: ['a2'], live: 2 });
    assert.deepEqual(await service.resolve('backup', parseSelector('role=web,os in (linux,custom)')), { matched: ['a2', 'a3'], live: 2 });
    // Listing matches every registered endpoint, live or not, and counts them.
    const page = await service.matching(parseSelector('role=web'), '', 2);
    assert.deepEqual([page.items.map((e) => e.name), page.next, page.count], [['a1', 'a2'], 'a2', 4]);
    const rest = await service.matching(parseSelector('role=web'), 'a2', 2);
    assert.deepEqual([rest.items.map((e) => e.name), rest.next, rest.count], [['a3', 'gone'], null, 4]);
  });
});
