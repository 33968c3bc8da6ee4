import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config/loader';
import { tlsRefusalKey } from '../../lib/tls-files';
import { makeCertificates, TestCertificates } from '../support/certificates';

const YAML = `task_types: [worker]
manager:
  db:
    uri: mysql://u:pw@127.0.0.1:3306/db
`;

/** TLS settings: validated at start, each bad file named by its key, before anything connects. */
describe('configuration: TLS', function () {
  let certs: TestCertificates;
  let dir: string;

  before(async function () {
    this.timeout(30_000);
    certs = await makeCertificates();
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-config-'));
    writeFileSync(path.join(dir, 'x.config.yaml'), YAML);
  });

  after(function () {
    certs.remove();
  });

  const load = (env: Record<string, string>) => loadConfig({ mode: 'x', env, configDir: dir });
  const mq = (extra: Record<string, string>): Record<string, string> => ({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__ENABLED: 'true', ...extra });
  const refused = (env: Record<string, string>, pattern: RegExp): void => {
    assert.throws(() => load(env), (err: Error) => err instanceof ConfigError && pattern.test(err.message), `expected ${pattern}`);
  };

  it('is off by default; on, the port not given becomes AMQPS\'s 5671 and one given stays', function () {
    const off = load({});
    assert.equal(off.manager.message_queue.tls.enabled, false);
    assert.equal(off.manager.message_queue.port, 5672);
    assert.equal(load(mq({})).manager.message_queue.port, 5671);
    assert.equal(load(mq({ TASKER_MANAGER__MESSAGE_QUEUE__PORT: '5999' })).manager.message_queue.port, 5999);
    const on = load(mq({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.ca, TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert, TASKER_MANAGER__MESSAGE_QUEUE__TLS__KEY: certs.clientKey }));
    assert.equal(on.manager.message_queue.tls.verify, true);
  });

  it('refuses TLS files given while TLS is off (the connection would stay in clear text)', function () {
    refused({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.ca }, /'manager\.message_queue\.tls\.enabled': must be true when manager\.message_queue\.tls\.ca is set/);
    refused({ TASKER_MANAGER__DB__TLS__CERT: certs.clientCert }, /'manager\.db\.tls\.enabled': must be true when manager\.db\.tls\.cert is set/);
  });

  it('names the key of a file that is missing, not a certificate, not a key, or not the certificate\'s key', function () {
    refused(mq({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: '/nonexistent/ca.pem' }), /'manager\.message_queue\.tls\.ca': cannot read \/nonexistent\/ca\.pem: ENOENT/);
    refused(mq({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.serverKey }), /'manager\.message_queue\.tls\.ca': .*server\.key holds no PEM certificate/);
    refused(mq({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert }), /'manager\.message_queue\.tls\.key': must be set with manager\.message_queue\.tls\.cert/);
    refused(mq({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert, TASKER_MANAGER__MESSAGE_QUEUE__TLS__KEY: certs.ca }), /'manager\.message_queue\.tls\.key': .*tasker-test-ca\.pem is not a PEM private key/);
    refused(mq({ TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert, TASKER_MANAGER__MESSAGE_QUEUE__TLS__KEY: certs.serverKey }), /'manager\.message_queue\.tls\.key': .*server\.key is not the private key of the certificate in .*console1\.pem/);
    refused({ TASKER_MANAGER__DB__TLS__ENABLED: 'true', TASKER_MANAGER__DB__TLS__CA: '/nonexistent/db-ca.pem' }, /'manager\.db\.tls\.ca': cannot read/);
  });

  it('refuses a server name for MySQL, which checks the URI\'s host', function () {
    refused({ TASKER_MANAGER__DB__TLS__ENABLED: 'true', TASKER_MANAGER__DB__TLS__SERVERNAME: 'db.example' }, /'manager\.db\.tls\.servername': is not used for MySQL/);
  });

  it('blames the CA, the name or the client certificate for a refused handshake, and nothing for a server away', function () {
    const code = (c: string, message = 'x'): Error => Object.assign(new Error(message), { code: c });
    assert.equal(tlsRefusalKey(code('SELF_SIGNED_CERT_IN_CHAIN'), 'p'), 'p.ca');
    assert.equal(tlsRefusalKey(code('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'p'), 'p.ca');
    assert.equal(tlsRefusalKey(code('ERR_TLS_CERT_ALTNAME_INVALID'), 'p'), 'p.servername');
    assert.equal(tlsRefusalKey(code('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'p'), 'p.cert');
    assert.equal(tlsRefusalKey(code('HANDSHAKE_SSL_ERROR', 'self-signed certificate in certificate chain'), 'p'), 'p.ca');
    assert.equal(tlsRefusalKey(new Error('wrapped', { cause: code('CERT_HAS_EXPIRED') }), 'p'), 'p.ca');
    assert.equal(tlsRefusalKey(code('ECONNREFUSED'), 'p'), null);
    assert.equal(tlsRefusalKey(new Error('no code'), 'p'), null);
  });
});
