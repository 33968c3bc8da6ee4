import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** A connection's TLS settings as configured (`manager.message_queue.tls`, `manager.db.tls`). */
export interface TlsSettings {
  readonly enabled: boolean;
  /** PEM file of the certificate authorities to trust instead of Node's own list; empty: Node's list. */
  readonly ca: string;
  /** PEM files of a client certificate and its private key, for a server that asks for one. */
  readonly cert: string;
  readonly key: string;
  /** The name the server's certificate must carry, when it is not the host connected to. */
  readonly servername: string;
  /** Whether the server's certificate is checked (chain and name); off only for a test bed. */
  readonly verify: boolean;
}

/** What a TLS connection is given: the files' contents. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** A TLS file that cannot be used; `key` is the configuration key that names it. */
export class TlsFileError extends Error {
  constructor(readonly key: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readPem(file: string, key: string, root: string): Buffer {
  try {
    return readFileSync(path.resolve(root, file));
  } catch (err) {
    throw new TlsFileError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

function certificates(pem: Buffer, file: string, key: string): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TlsFileError(key, `${file} holds no PEM certificate`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new TlsFileError(key, `${file} holds a certificate that cannot be read: ${(err as Error).message}`, { cause: err });
    }
  });
}

function privateKey(pem: Buffer, file: string, key: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new TlsFileError(key, `${file} is not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads a section's files and checks them: each readable, the CA file one or more certificates, the client
 * certificate and key given together and matching. `prefix` is the section's key, for the error; relative
 * paths are from `root` (the project's directory). Read again at each connection, so that renewed files are
 * used from the next reconnect on.
 */
export function loadTlsMaterial(tls: TlsSettings, prefix: string, root: string): TlsMaterial {
  const out: TlsMaterial = {};
  if (tls.ca !== '') {
    out.ca = readPem(tls.ca, `${prefix}.ca`, root);
    certificates(out.ca, tls.ca, `${prefix}.ca`);
  }
  if ((tls.cert === '') !== (tls.key === '')) {
    const missing = tls.cert === '' ? 'cert' : 'key';
    throw new TlsFileError(`${prefix}.${missing}`, `must be set with ${prefix}.${missing === 'cert' ? 'key' : 'cert'} (a client certificate and its key go together)`);
  }
  if (tls.cert !== '') {
    out.cert = readPem(tls.cert, `${prefix}.cert`, root);
    out.key = readPem(tls.key, `${prefix}.key`, root);
    const [leaf] = certificates(out.cert, tls.cert, `${prefix}.cert`);
    const key = privateKey(out.key, tls.key, `${prefix}.key`);
    if (!leaf.checkPrivateKey(key)) throw new TlsFileError(`${prefix}.key`, `${tls.key} is not the private key of the certificate in ${tls.cert}`);
  }
  return out;
}

/** Errors of a TLS handshake that refused the server's certificate: its chain (the CA) or its name. */
const CHAIN_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'HOSTNAME_MISMATCH',
]);

/**
 * The configuration key to blame when a TLS connection failed for a reason that trying again cannot fix (the
 * server's certificate refused, or ours), or null for any other failure (a server away: try again).
 */
export function tlsRefusalKey(err: unknown, prefix: string): string | null {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: string }).code ?? '';
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${prefix}.servername`;
    if (CHAIN_ERRORS.has(code)) return `${prefix}.ca`;
    // The server refused our certificate (or asked for one we did not give): a TLS alert.
    if (/^ERR_SSL_.*(CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE)/.test(code)) return `${prefix}.cert`;
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO') return `${prefix}.enabled`;
    // mysql2 keeps only the message of the handshake's error.
    if (code === 'HANDSHAKE_SSL_ERROR') {
      const message = String((e as Error).message);
      if (/Hostname\/IP does not match|altnames/i.test(message)) return `${prefix}.servername`;
      return /certificate|issuer/i.test(message) ? `${prefix}.ca` : `${prefix}.enabled`;
    }
  }
  return null;
}
