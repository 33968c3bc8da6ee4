import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificates {
  dir: string;
  ca: string;
  /** For 127.0.0.1 and localhost, signed by `ca`. */
  serverCert: string;
  serverKey: string;
  /** A client's, signed by `ca`. */
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: trusting it alone refuses the server. */
  otherCa: string;
  /** A server certificate signed by `ca` for another name only. */
  wrongNameCert: string;
  wrongNameKey: string;
  remove(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function ca(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`]);
  return { cert, key };
}

async function leaf(dir: string, name: string, signer: { cert: string; key: string }, altNames: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${altNames}\n`);
  await run('openssl', ['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', signer.cert, '-CAkey', signer.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  return { cert, key };
}

/** A throwaway CA, server and client certificates (EC P-256, valid 2 days) made with openssl, in a temporary directory. */
export async function makeCertificates(): Promise<TestCertificates> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-certs-'));
  const root = await ca(dir, 'tasker-test-ca');
  const other = await ca(dir, 'other-ca');
  const server = await leaf(dir, 'server', root, 'DNS:localhost,IP:127.0.0.1');
  const client = await leaf(dir, 'console1', root, 'DNS:console1');
  const wrong = await leaf(dir, 'elsewhere', root, 'DNS:elsewhere.example');
  return {
    dir, ca: root.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key,
    otherCa: other.cert, wrongNameCert: wrong.cert, wrongNameKey: wrong.key,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
