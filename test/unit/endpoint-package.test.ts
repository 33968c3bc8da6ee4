import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, packageVersion, projectRoot } from '../../config/loader';
import { loadHandlers } from '../../handlers';
import { handlersDirOf } from '../../scripts/compose';
import { bundleEndpoint, ENDPOINT_BIN, ENDPOINT_PACKAGE_DIR, endpointEntryPoints, forbiddenInputs } from '../../scripts/endpoint-bundle';
import { endpointsToRun } from '../../scripts/managers';

/** The endpoint package (docs/endpoint-host.md): its configuration by a file of one's own, its bundle. */
describe('endpoint package', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-endpoint-unit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, yaml: string): string => {
    const f = path.join(dir, name);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, yaml);
    return f;
  };

  describe('configuration by --config FILE or the environment', function () {
    it('reads the file, then the environment over it; the mode is a name only', function () {
      const f = file('etc/a.yaml', 'task_types: [worker]\nmanager:\n  message_queue:\n    password: ${MQ_PW}\n');
      const cfg = loadConfig({ source: { file: f }, env: { MQ_PW: 'pw', TASKER_MANAGER__HEARTBEAT_INTERVAL: '2' } });
      assert.equal(cfg.mode, 'endpoint');
      assert.equal(cfg.manager.message_queue.password, 'pw');
      assert.equal(cfg.manager.heartbeat_interval, 2);
      assert.equal(loadConfig({ source: { file: f }, env: { MQ_PW: 'pw', TASKER_MODE: 'edge' } }).mode, 'edge');
    });

    it('takes relative paths from the file\'s folder (handlers_dir, TLS files), absolute ones as they are', function () {
      const f = file('etc/b.yaml', 'task_types: [worker]\nmanager:\n  handlers_dir: handlers\n  message_queue:\n    tls:\n      enabled: true\n      verify: false\n');
      const cfg = loadConfig({ source: { file: f }, env: {} });
      assert.equal(cfg.manager.handlers_dir, path.join(dir, 'etc', 'handlers'));
      assert.equal(handlersDirOf(cfg), path.join(dir, 'etc', 'handlers'));
      const abs = loadConfig({ source: { file: f }, env: { TASKER_MANAGER__HANDLERS_DIR: '/srv/tasker/handlers' } });
      assert.equal(handlersDirOf(abs), '/srv/tasker/handlers');
      // Read at load from the file's folder, so the error names the file there.
      assert.throws(() => loadConfig({ source: { file: f }, env: { TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: 'ca.pem' } }),
        (err: Error) => err.message.startsWith(`config key 'manager.message_queue.tls.ca': cannot read ${path.join(dir, 'etc', 'ca.pem')}`));
    });

    it('reads TASKER_CONFIG when --config is not given, and the environment alone when neither is', function () {
      const f = file('etc/c.yaml', 'task_types: [backup]\n');
      assert.deepEqual(loadConfig({ source: {}, env: { TASKER_CONFIG: f } }).task_types, ['backup']);
      const envOnly = loadConfig({ source: {}, env: { TASKER_TASK_TYPES: '[worker]' } });
      assert.deepEqual(envOnly.task_types, ['worker']);
      assert.equal(envOnly.manager.handlers_dir, path.resolve('handlers'));
      assert.throws(() => loadConfig({ source: {}, env: {} }), /config key 'task_types': is required/);
    });

    it('names a file that does not exist, and refuses a mode key in it', function () {
      assert.throws(() => loadConfig({ source: { file: path.join(dir, 'none.yaml') }, env: {} }), (err: Error) => err instanceof ConfigError && /none\.yaml: does not exist/.test(err.message));
      const f = file('etc/d.yaml', 'mode: x\ntask_types: [worker]\n');
      assert.throws(() => loadConfig({ source: { file: f }, env: {} }), /config key 'mode'/);
    });

    it('keeps a relative handlers_dir of a mode of config/ under dist/, and refuses a path with other characters', function () {
      const cfg = loadConfig({ mode: 'test', env: {} });
      assert.equal(cfg.manager.handlers_dir, 'handlers');
      assert.equal(handlersDirOf(cfg), path.join(projectRoot(), 'dist', 'handlers'));
      const f = file('etc/e.yaml', 'task_types: [worker]\nmanager:\n  handlers_dir: "C:\\\\handlers"\n');
      assert.throws(() => loadConfig({ source: { file: f }, env: {} }), /config key 'manager\.handlers_dir': must be a relative or absolute path/);
    });
  });

  describe('endpoints to run', function () {
    const cfg = loadConfig({ mode: 'test', env: {} });
    it('runs every manager.endpoints entry without --endpoint, and those named with it', function () {
      assert.deepEqual(endpointsToRun({ config: cfg, values: {} }).map((e) => e.name), ['console1', 'console2']);
      assert.deepEqual(endpointsToRun({ config: cfg, values: { endpoint: ['console2'], tasktype: ['backup'] } }).map((e) => [e.name, e.task_types]), [['console2', ['backup']]]);
    });

    it('asks for --endpoint when manager.endpoints is empty', function () {
      const none = loadConfig({ source: {}, env: { TASKER_TASK_TYPES: '[worker]' } });
      assert.throws(() => endpointsToRun({ config: none, values: {} }), /--endpoint NAME is required \(manager\.endpoints lists no endpoint to run\)/);
    });
  });

  describe('handler modules', function () {
    it('tells a missing module from one that fails to load or exports no handleTask', function () {
      const h = path.join(dir, 'handlers');
      mkdirSync(h, { recursive: true });
      writeFileSync(path.join(h, 'broken.js'), 'require("./nothing-here");\n');
      writeFileSync(path.join(h, 'empty.js'), 'exports.other = 1;\n');
      assert.throws(() => loadHandlers(['absent'], h), /task type 'absent': no handler module absent in .* \(absent\.js, compiled\)/);
      assert.throws(() => loadHandlers(['broken'], h), /task type 'broken': handler module .*broken\.js failed to load: Cannot find module '\.\/nothing-here'/);
      assert.throws(() => loadHandlers(['empty'], h), /task type 'empty': handler module .*empty\.js does not export handleTask/);
    });
  });

  describe('bundle', function () {
    this.timeout(60_000);
    it('has an entry for the command and one for each manager/*-worker.ts', function () {
      const entries = endpointEntryPoints();
      assert.equal(entries['tasker-endpoint'], path.join(projectRoot(), 'scripts', 'tasker-endpoint.ts'));
      const root = mkdtempSync(path.join(os.tmpdir(), 'tasker-entries-'));
      try {
        mkdirSync(path.join(root, 'manager'));
        for (const f of ['pool-worker.ts', 'worker-pool.ts', 'handler.ts']) writeFileSync(path.join(root, 'manager', f), '');
        assert.deepEqual(Object.keys(endpointEntryPoints(root)), ['tasker-endpoint', 'pool-worker']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    it('carries nothing of the server side, its storage or its drivers', async function () {
      const { result } = await bundleEndpoint({ write: false, outdir: path.join(dir, 'bundle') });
      const inputs = Object.keys(result.metafile.inputs);
      assert.deepEqual(forbiddenInputs(result.metafile), []);
      assert.ok(inputs.includes('manager/endpoint-manager.ts') && inputs.includes('protocol/rabbitmq/rabbit-broker.ts'), 'the managers and the broker client are in');
      assert.deepEqual(inputs.filter((i) => /^(api|storage)\//.test(i) || /better-sqlite3|typeorm|mysql2/.test(i)), []);
      assert.deepEqual(forbiddenInputs({ inputs: { 'api/storage/database.ts': { bytes: 1, imports: [] }, 'node_modules/better-sqlite3/lib/index.js': { bytes: 1, imports: [] } }, outputs: {} }),
        ['api/storage/database.ts', 'node_modules/better-sqlite3/lib/index.js']);
    });

    it('is one package of the project\'s version with a bin and no dependency', function () {
      const manifest = JSON.parse(readFileSync(path.join(ENDPOINT_PACKAGE_DIR, 'package.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(manifest.version, packageVersion());
      assert.deepEqual(manifest.bin, { 'tasker-endpoint': ENDPOINT_BIN });
      assert.equal(manifest.dependencies, undefined);
      assert.equal(manifest.scripts, undefined, 'an install runs no script of the package');
    });
  });
});
