import assert from 'node:assert/strict';
import { makeCertificates, TestCertificates } from '../support/certificates';
import { freePort, Harness } from '../support/harness';
import { PrivateMariadb } from '../support/private-mariadb';
import { RabbitCluster, requireOwnRabbit } from '../support/rabbit-cluster';
import { requireSslUser } from '../support/tls-env';

const SEED = { identifier: 'over-tls', payload: { sleep: 0 }, endpoints: ['console1'] };

/**
 * `manager.message_queue.tls`: a RabbitMQ node of the test's own with an AMQPS listener and certificates the
 * test makes with openssl. The API and a manager connect over it; a wrong CA or name fails the start, naming
 * the key.
 */
describe('TLS to RabbitMQ (a node of its own with an AMQPS listener)', function () {
  let certs: TestCertificates;
  let cluster: RabbitCluster;
  let h: Harness;

  before(async function () {
    await requireOwnRabbit(this);
    certs = await makeCertificates();
    cluster = new RabbitCluster(1, { tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } });
    await cluster.start();
    h = new Harness({ env: cluster.testEnv() });
    await h.setup();
  });

  after(async function () {
    await h?.teardown();
    await cluster?.destroy();
    certs?.remove();
  });

  const tls = (extra: Record<string, string> = {}): Record<string, string> => ({
    TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: `127.0.0.1:${cluster.nodes[0].amqpsPort}`,
    TASKER_MANAGER__MESSAGE_QUEUE__TLS__ENABLED: 'true',
    TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.ca,
    ...extra,
  });

  it('connects the API and a manager (with a client certificate) over AMQPS, checked by the CA, and completes a task', async function () {
    await h.startApi(undefined, tls());
    await h.startManager('console1', ['worker'], tls({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert, TASKER_MANAGER__MESSAGE_QUEUE__TLS__KEY: certs.clientKey }));
    assert.equal((await h.post('worker', SEED)).status, 201);
    const done = await h.waitForStatus('worker', SEED.identifier, ['DONE']);
    assert.deepEqual(done.taskResponseList.map((r: any) => [r.endpoint, r.state]), [['console1', 'succeeded']]);
    type Conn = { ssl: boolean; port: number; peer_cert_subject?: string; client_properties?: { connection_name?: string } };
    let mine: Conn[] = [];
    // The management API lists a connection with its first statistics, a few seconds after it opened.
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      const { json } = await h.admin().request('GET', '/connections?columns=name,ssl,port,peer_cert_subject,client_properties');
      mine = (json as Conn[]).filter((c) => String(c.client_properties?.connection_name).startsWith('tasker'));
      if (mine.some((c) => c.client_properties?.connection_name?.includes('console1')) && mine.some((c) => c.client_properties?.connection_name?.includes('api'))) break;
    }
    assert.ok(mine.length >= 2, JSON.stringify(mine));
    for (const c of mine) {
      assert.equal(c.ssl, true, `${c.client_properties?.connection_name} is not TLS`);
      assert.equal(c.port, cluster.nodes[0].amqpsPort);
    }
    const manager = mine.find((c) => c.client_properties?.connection_name?.includes('console1'));
    assert.match(String(manager?.peer_cert_subject), /CN=console1/);
  });

  it('fails the start, naming manager.message_queue.tls.ca, when the broker\'s certificate is not signed by the CA', async function () {
    const p = h.spawnManager('console2', ['worker'], tls({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.otherCa }));
    assert.equal(await p.exited, 1);
    assert.match(p.raw.join('\n'), /TLS to RabbitMQ at 127\.0\.0\.1:\d+ failed: .*; check manager\.message_queue\.tls\.ca/);
  });

  it('fails the start, naming manager.message_queue.tls.servername, when the certificate is for another name', async function () {
    const p = h.spawnManager('console2', ['worker'], tls({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__SERVERNAME: 'elsewhere.example' }));
    assert.equal(await p.exited, 1);
    assert.match(p.raw.join('\n'), /check manager\.message_queue\.tls\.servername/);
  });

  it('refuses a client certificate that is not its key\'s, before connecting (exit 2, the key named)', async function () {
    const p = h.spawnManager('console2', ['worker'], tls({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert, TASKER_MANAGER__MESSAGE_QUEUE__TLS__KEY: certs.serverKey }));
    assert.equal(await p.exited, 2);
    assert.match(p.raw.join('\n'), /config key 'manager\.message_queue\.tls\.key': .*server\.key is not the private key of the certificate in .*console1\.pem/);
  });
});

/**
 * `manager.db.tls`: a MariaDB of the test's own with TLS, whose application user is made to REQUIRE SSL, so
 * that the API can only reach it over TLS.
 */
describe('TLS to MySQL (a MariaDB of its own whose user requires it)', function () {
  let certs: TestCertificates;
  let db: PrivateMariadb;
  let h: Harness;

  before(async function () {
    await requireOwnRabbit(this);
    certs = await makeCertificates();
    db = new PrivateMariadb({ tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } });
    await db.start();
    h = new Harness({ env: { TASKER_TEST_DB_PORT: String(db.port) } });
    await h.setup();
    await requireSslUser(db.port, h.config.manager.db.uri);
  });

  after(async function () {
    await h?.teardown();
    await db?.destroy();
    certs?.remove();
  });

  const tls = (ca: string): Record<string, string> => ({ TASKER_MANAGER__DB__TLS__ENABLED: 'true', TASKER_MANAGER__DB__TLS__CA: ca });

  it('serves with manager.db.tls on: the database is up and a task is stored', async function () {
    await h.startApi(undefined, tls(certs.ca));
    const ready = await h.get('readyz');
    assert.equal(ready.json.checks.database, 'up');
    assert.equal((await h.post('worker', { identifier: 'stored-over-tls', payload: {}, endpoints: ['nobody'], allow_unknown_endpoints: true })).status, 201);
    assert.equal((await h.get('worker/stored-over-tls')).json.task.identifier, 'stored-over-tls');
  });

  it('is refused by the database without TLS, and fails the start naming manager.db.tls.ca with a wrong CA', async function () {
    const plain = h.spawnApi(await freePort(), {});
    assert.equal(await plain.exited, 1);
    assert.match(plain.raw.join('\n'), /ER_ACCESS_DENIED_ERROR|Access denied/);
    const wrong = h.spawnApi(await freePort(), tls(certs.otherCa));
    assert.equal(await wrong.exited, 1);
    assert.match(wrong.raw.join('\n'), /TLS to the database failed: .*; check manager\.db\.tls\.ca/);
  });
});

