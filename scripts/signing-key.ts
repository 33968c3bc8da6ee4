import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSigningKey, projectRoot } from '../config/loader';
import type { Config } from '../config/schema';
import type { Logger } from '../lib/logger';
import { keyId, publicKeyLine, rawPublicKey } from '../protocol/task-signature';

/** Writes a new Ed25519 private key (PEM, mode 0600); never over a file that exists. */
export function writeNewKey(file: string): KeyObject {
  const { privateKey } = generateKeyPairSync('ed25519');
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  return privateKey;
}

export const idOf = (key: KeyObject): string => keyId(rawPublicKey(key));

/**
 * What `initialize` does about `api.signing.private_key`: nothing when it is empty; creates the key when
 * the file does not exist; checks it when it does. Either way it logs the public key line the endpoints
 * are to trust.
 */
export function ensureSigningKey(config: Config, logger: Logger): void {
  const file = config.api.signing.private_key;
  if (file === '') return;
  const created = !existsSync(path.resolve(projectRoot(), file));
  const key = created ? writeNewKey(path.resolve(projectRoot(), file)) : loadSigningKey(config);
  logger.info({ file, keyId: idOf(key), trust: publicKeyLine(key) },
    created ? 'signing key created; the endpoints trust it with manager.trust.public_keys' : 'signing key present');
}
