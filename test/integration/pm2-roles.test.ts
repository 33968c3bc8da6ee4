import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { publicKeyLine } from '../../protocol/task-signature';
import { freePort, Harness } from '../support/harness';
import { IsolatedPm2 } from '../support/pm2';

/**
 * `npx pm2 start ecosystem.config.js` starts what the host's role needs (TASKER_ROLE, or from the mode):
 * the production server the API only, an endpoint host its manager only; pm2 under a home of its own.
 */
describe('pm2 starts what the host\'s role needs (production mode)', function () {
  const h = new Harness();
  let pm2: IsolatedPm2 | null = null;
  // The production mode signs every task, and its endpoints require signatures (docs/security.md "Signed tasks").
  const keyDir = mkdtempSync(path.join(os.tmpdir(), 'tasker-pm2-key-'));
  const keyFile = path.join(keyDir, 'signing.pem');
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });

  before(async function () {
    await h.setup(this);
  });

  afterEach(async function () {
    await pm2?.kill();
    pm2 = null;
  });

  after(async function () {
    await h.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  /** The production mode's variables, pointed at this run's database and vhost. */
  const production = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const mq = h.config.manager.message_queue;
    const env: NodeJS.ProcessEnv = {
      ...process.env, TASKER_MODE: 'production', TASKER_MQ_HOST: mq.host, TASKER_MQ_PORT: String(mq.port), TASKER_MQ_VHOST: mq.virtual_host,
      TASKER_MQ_USERNAME: mq.username, TASKER_MQ_PASSWORD: mq.password, TASKER_AUTH: 'off', TASKER_LOG_LEVEL: 'warn',
      TASKER_SIGNING_KEY: keyFile, TASKER_TRUSTED_KEYS: publicKeyLine(privateKey), ...extra,
    };
    for (const k of Object.keys(env)) if (k.startsWith('TASKER_') && k.includes('__')) delete env[k];
    return env;
  };

  const online = async (p: IsolatedPm2, names: string[]): Promise<void> => {
    for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 500))) {
      const list = await p.list();
      if (list.length === names.length && list.every((x) => x.status === 'online')) {
        assert.deepEqual(list.map((x) => x.name).sort(), [...names].sort());
        return;
      }
      assert.ok(Date.now() < deadline, `pm2 runs ${JSON.stringify(list)}, not ${names.join(', ')}`);
    }
  };

  it('starts the API only on the server (a database, endpoints with users of their own)', async function () {
    pm2 = new IsolatedPm2(production({ TASKER_DB_URI: h.config.manager.db.uri, TASKER_API_PORT: String(await freePort()) }));
    await pm2.start();
    await online(pm2, ['tasker-api']);
  });

  it('starts the endpoint\'s manager only on an endpoint host (no database)', async function () {
    pm2 = new IsolatedPm2(production({ TASKER_ENDPOINT: 'web-9' }));
    await pm2.start();
    await online(pm2, ['tasker-manager-web-9']);
  });

  it('starts both with TASKER_ROLE=all, and refuses an unknown role or the API without a database', async function () {
    pm2 = new IsolatedPm2(production({ TASKER_DB_URI: h.config.manager.db.uri, TASKER_API_PORT: String(await freePort()), TASKER_ROLE: 'all', TASKER_ENDPOINT: 'web-8' }));
    await pm2.start();
    await online(pm2, ['tasker-api', 'tasker-manager-web-8']);
    await pm2.kill();
    pm2 = new IsolatedPm2(production({ TASKER_ROLE: 'everything' }));
    await assert.rejects(pm2.start(), /TASKER_ROLE must be one of server, endpoint, all; got 'everything'/);
    await pm2.kill();
    pm2 = new IsolatedPm2(production({ TASKER_ROLE: 'server' }));
    await assert.rejects(pm2.start(), /TASKER_ROLE=server runs the API, which needs manager\.db\.uri/);
  });
});
