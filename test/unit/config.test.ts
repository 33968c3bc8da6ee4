import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config/loader';

function configDir(yaml: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-config-'));
  writeFileSync(path.join(dir, 'x.config.yaml'), yaml);
  return dir;
}

const MINIMAL = `task_types: [worker]
manager:
  db:
    uri: mysql://u:\${PW:-pw}@127.0.0.1:3306/db
`;

describe('configuration', function () {
  it('fills defaults, interpolates ${VAR:-default} and freezes the result', function () {
    const cfg = loadConfig({ mode: 'x', env: {}, configDir: configDir(MINIMAL) });
    assert.equal(cfg.api.port, 8888);
    assert.equal(cfg.manager.db.uri, 'mysql://u:pw@127.0.0.1:3306/db');
    assert.equal(cfg.manager.message_queue.exchange, 'tasker');
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.api));
  });

  it('takes ${VAR} from the environment and TASKER_A__B overrides', function () {
    const cfg = loadConfig({ mode: 'x', env: { PW: 's3cret', TASKER_API__PORT: '9000', TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD: '123' }, configDir: configDir(MINIMAL) });
    assert.equal(cfg.manager.db.uri, 'mysql://u:s3cret@127.0.0.1:3306/db');
    assert.equal(cfg.api.port, 9000);
    assert.equal(cfg.manager.message_queue.password, '123');
  });

  it('rejects an unknown key by its full name', function () {
    assert.throws(() => loadConfig({ mode: 'x', env: {}, configDir: configDir(MINIMAL + 'api:\n  prot: 1\n') }),
      (err: Error) => err instanceof ConfigError && /'api\.prot': unknown key/.test(err.message));
  });

  it('rejects a wrong type, naming the key', function () {
    assert.throws(() => loadConfig({ mode: 'x', env: {}, configDir: configDir(MINIMAL + 'api:\n  port: eighty\n') }),
      /'api\.port': must be an integer/);
    assert.throws(() => loadConfig({ mode: 'x', env: {}, configDir: configDir('task_types: [Bad]\nmanager: {db: {uri: x}}\n') }),
      /'task_types\[0\]'/);
  });

  it('fails naming a ${VAR} that is not set and has no default', function () {
    assert.throws(() => loadConfig({ mode: 'x', env: {}, configDir: configDir('task_types: [w]\nmanager: {db: {uri: "${DB_URI}"}}\n') }),
      /DB_URI is not set/);
  });

  it('checks manager.endpoints against task_types', function () {
    const yaml = MINIMAL.replace('manager:\n', 'manager:\n  endpoints:\n    - name: a\n      task_types: [backup]\n');
    assert.throws(() => loadConfig({ mode: 'x', env: {}, configDir: configDir(yaml) }), /'backup' is not in task_types/);
    const ok = loadConfig({ mode: 'x', env: {}, configDir: configDir(MINIMAL.replace('manager:\n', 'manager:\n  endpoints: [a]\n')) });
    assert.deepEqual(ok.manager.endpoints, [{ name: 'a', task_types: ['worker'], labels: {} }]);
  });

  it('reads endpoint labels, manager.labels and TASKER_LABELS, and refuses a bad label naming its key', function () {
    const yaml = MINIMAL.replace('manager:\n', 'manager:\n  labels: {tier: app}\n  endpoints:\n    - name: a\n      labels: {role: web, tier: "1"}\n    - b\n');
    const load = (env: Record<string, string>, text = yaml) => loadConfig({ mode: 'x', env, configDir: configDir(text) });
    assert.deepEqual(load({}).manager.endpoints.map((e) => e.labels), [{ tier: '1', role: 'web' }, { tier: 'app' }]);
    // The environment's labels are the process's: under each endpoint's own.
    const env = load({ TASKER_LABELS: 'region=eu, tier=db' });
    assert.deepEqual(env.manager.labels, { tier: 'db', region: 'eu' });
    assert.deepEqual(env.manager.endpoints.map((e) => e.labels), [{ tier: '1', region: 'eu', role: 'web' }, { tier: 'db', region: 'eu' }]);
    assert.throws(() => load({}, MINIMAL.replace('manager:\n', 'manager:\n  endpoints:\n    - a\n    - name: b\n      labels: {"bad key": x}\n')),
      /config key 'manager\.endpoints\[1\]\.labels\.bad key': /);
    assert.throws(() => load({}, MINIMAL.replace('manager:\n', 'manager:\n  endpoints:\n    - name: b\n      labels: {role: "-web"}\n')),
      /config key 'manager\.endpoints\[0\]\.labels\.role': label value '-web'/);
    assert.throws(() => load({}, MINIMAL.replace('manager:\n', 'manager:\n  endpoints:\n    - name: b\n      labels: [role]\n')),
      /config key 'manager\.endpoints\[0\]\.labels'/);
    assert.throws(() => load({ TASKER_LABELS: 'role' }), /TASKER_LABELS: .*role/);
    assert.throws(() => load({ TASKER_LABELS: 'Bad_/x=1' }), /TASKER_LABELS: /);
  });

  it('keeps handler_timeout within RabbitMQ\'s consumer timeout and receipt_delay under the INCOMPLETE timeout', function () {
    const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.throws(() => load({ TASKER_MANAGER__HANDLER_TIMEOUT: '3600' }), /'manager\.handler_timeout': must be at most 1740 s with RabbitMQ/);
    assert.equal(load({ TASKER_MANAGER__HANDLER_TIMEOUT: '3600', TASKER_MANAGER__TRANSPORT: 'in-process' }).manager.handler_timeout, 3600);
    assert.throws(() => load({ TASKER_MANAGER__RECEIPT_DELAY: '5', TASKER_API__WAIT_FOR_ENDPOINTS_TIMEOUT: '5' }),
      /'manager\.receipt_delay': must be shorter than api\.wait_for_endpoints_timeout/);
    assert.equal(load({ TASKER_MANAGER__RECEIPT_DELAY: '0' }).manager.receipt_delay, 0);
  });

  it('loads every shipped mode', function () {
    const env = { TASKER_DB_URI: 'mysql://u:p@h:3306/d', TASKER_MQ_HOST: 'h', TASKER_MQ_USERNAME: 'u', TASKER_MQ_PASSWORD: 'p' };
    for (const mode of ['development', 'test', 'production']) {
      const cfg = loadConfig({ mode, env });
      assert.deepEqual(cfg.task_types, ['worker', 'backup']);
    }
    assert.deepEqual(loadConfig({ mode: 'development', env: {} }).manager.endpoints.map((e) => e.name), ['console1', 'console2']);
  });

  it('refuses task types that would collide with the server side\'s own queues', function () {
    for (const name of ['responses', 'state', 'dead-letter']) {
      assert.throws(() => loadConfig({ mode: 'x', env: {}, configDir: configDir(MINIMAL.replace('[worker]', `[worker, ${name}]`)) }),
        new RegExp(`'task_types\\[1\\]': '${name}' is reserved`));
    }
  });

  it('loads the production mode for an endpoint host without any database setting', function () {
    const cfg = loadConfig({ mode: 'production', env: { TASKER_MQ_HOST: 'h', TASKER_MQ_USERNAME: 'node7', TASKER_MQ_PASSWORD: 'p' } });
    assert.equal(cfg.manager.db.uri, '');
    assert.equal(cfg.api.endpoint_identity, 'per_endpoint_user');
    assert.equal(loadConfig({ mode: 'development', env: {} }).api.endpoint_identity, 'shared_user');
    assert.throws(() => loadConfig({ mode: 'x', env: { TASKER_API__ENDPOINT_IDENTITY: 'anyone' }, configDir: configDir(MINIMAL) }),
      /'api\.endpoint_identity': must be one of shared_user, per_endpoint_user/);
  });

  it('bounds the database waits: query_timeout defaults to 10 s and must be a positive number of seconds', function () {
    const load = (env: NodeJS.ProcessEnv) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.equal(load({}).manager.db.query_timeout, 10);
    assert.equal(load({ TASKER_MANAGER__DB__QUERY_TIMEOUT: '2.5' }).manager.db.query_timeout, 2.5);
    assert.throws(() => load({ TASKER_MANAGER__DB__QUERY_TIMEOUT: '0' }), /config key 'manager\.db\.query_timeout': must be a number from 0\.1 to 3600/);
    assert.throws(() => load({ TASKER_MANAGER__DB__QUERY_TIMEOUT: 'soon' }), /config key 'manager\.db\.query_timeout'/);
  });

  it('caps the resend backoff at api.resend_backoff_max seconds, 300 by default, at least 1', function () {
    const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.equal(load({}).api.resend_backoff_max, 300);
    assert.equal(load({ TASKER_API__RESEND_BACKOFF_MAX: '2.5' }).api.resend_backoff_max, 2.5);
    assert.throws(() => load({ TASKER_API__RESEND_BACKOFF_MAX: '0' }), /'api\.resend_backoff_max'/);
    assert.throws(() => load({ TASKER_API__RESEND_BACKOFF_MAX: 'soon' }), /'api\.resend_backoff_max'/);
  });

  it('looks at the dead-letter queue every api.dead_letter_check_interval seconds, 15 by default, from 0.1 to 3600', function () {
    const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.equal(load({}).api.dead_letter_check_interval, 15);
    assert.equal(load({ TASKER_API__DEAD_LETTER_CHECK_INTERVAL: '0.5' }).api.dead_letter_check_interval, 0.5);
    assert.throws(() => load({ TASKER_API__DEAD_LETTER_CHECK_INTERVAL: '0' }), /config key 'api\.dead_letter_check_interval': must be a number from 0\.1 to 3600/);
    assert.throws(() => load({ TASKER_API__DEAD_LETTER_CHECK_INTERVAL: 'often' }), /'api\.dead_letter_check_interval'/);
  });

  it('refuses unknown endpoints by default; api.unknown_endpoints takes refuse or allow only', function () {
    const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.equal(load({}).api.unknown_endpoints, 'refuse');
    assert.equal(load({ TASKER_API__UNKNOWN_ENDPOINTS: 'allow' }).api.unknown_endpoints, 'allow');
    assert.throws(() => load({ TASKER_API__UNKNOWN_ENDPOINTS: 'warn' }), /'api\.unknown_endpoints': must be one of refuse, allow/);
  });

  it('gives api.webhooks its defaults, and refuses wrong values and unknown keys naming them', function () {
    const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.deepEqual({ ...load({}).api.webhooks }, {
      interval: 1, timeout: 10, retry_for: 259200, retry_base: 10, retry_max: 3600, concurrency: 16, log_keep: 604800, rotation_overlap: 86400, allow_http: false, allow_private: false,
      allow_per_task_urls: false, notify_secret: '', public_url: '',
    });
    const set = load({ TASKER_API__WEBHOOKS__ALLOW_HTTP: 'true', TASKER_API__WEBHOOKS__RETRY_FOR: '60', TASKER_API__WEBHOOKS__PUBLIC_URL: 'https://t.example.com/tasker' }).api.webhooks;
    assert.deepEqual([set.allow_http, set.retry_for, set.public_url], [true, 60, 'https://t.example.com/tasker']);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__TIMEOUT: '0' }), /config key 'api\.webhooks\.timeout': must be a number from 0\.1 to 120/);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__RETRY_BASE: '600', TASKER_API__WEBHOOKS__RETRY_MAX: '60' }), /'api\.webhooks\.retry_base': must not be longer than api\.webhooks\.retry_max/);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__PUBLIC_URL: 'https://t.example.com/' }), /'api\.webhooks\.public_url': must be empty or an http\(s\) URL/);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'maybe' }), /'api\.webhooks\.allow_private'/);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__ROTATION_OVERLAP: '-1' }), /'api\.webhooks\.rotation_overlap': must be a number from 0 to 2592000/);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__RETRIES: '3' }), /'api\.webhooks\.retries': unknown key/);
    const secret = `whsec_${Buffer.alloc(24, 1).toString('base64')}`;
    assert.equal(load({ TASKER_API__WEBHOOKS__NOTIFY_SECRET: secret }).api.webhooks.notify_secret, secret);
    assert.throws(() => load({ TASKER_API__WEBHOOKS__NOTIFY_SECRET: 'hunter2' }), /'api\.webhooks\.notify_secret': must be empty or whsec_/);
  });

  it('takes manager.type_concurrency per declared task type, 1 to 1024, and api.background_send_from from 0, naming a bad value', function () {
    const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: configDir(MINIMAL) });
    assert.deepEqual(load({}).manager.type_concurrency, {});
    assert.equal(load({}).api.background_send_from, 200);
    assert.deepEqual(load({ TASKER_MANAGER__TYPE_CONCURRENCY: '{worker: 2}' }).manager.type_concurrency, { worker: 2 });
    assert.equal(load({ TASKER_API__BACKGROUND_SEND_FROM: '0' }).api.background_send_from, 0);
    for (const [value, why] of [['{nosuch: 1}', /manager\.type_concurrency\.nosuch': 'nosuch' is not in task_types/], ['{worker: 0}', /manager\.type_concurrency\.worker': must be a number from 1 to 1024/],
      ['{worker: 1.5}', /manager\.type_concurrency\.worker'/], ['{worker: "2; rm -rf /"}', /manager\.type_concurrency\.worker'/], ['[1]', /manager\.type_concurrency': must be a mapping/]] as const) {
      assert.throws(() => load({ TASKER_MANAGER__TYPE_CONCURRENCY: value }), why, value);
    }
    assert.throws(() => load({ TASKER_API__BACKGROUND_SEND_FROM: '-1' }), /config key 'api\.background_send_from'/);
  });

  it('refuses an unknown mode', function () {
    assert.throws(() => loadConfig({ mode: 'nosuchmode', env: {} }), /nosuchmode/);
  });
});
