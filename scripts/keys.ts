import type { KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/loader';
import { parsePrivateKey, parsePublicKey, publicKeyLine } from '../protocol/task-signature';
import { main } from './main';
import { idOf, writeNewKey } from './signing-key';

/** Where a key is written when neither `--file` nor `api.signing.private_key` names one. */
const DEFAULT_FILE = 'keys/tasker-signing.pem';

/** A path as a person wrote it: relative to the project when it is inside it. */
function shown(file: string): string {
  const rel = path.relative(projectRoot(), file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/**
 * `npm run keys -- create|rotate|list [--file PATH] [--mode M]`: the Ed25519 key pair that signs task
 * messages (docs/security.md "Signed tasks"). The private key file is `--file`, else `api.signing.private_key`,
 * else keys/tasker-signing.pem, relative to the project; the public key line printed goes into
 * `manager.trust.public_keys` on every endpoint host.
 */
main('keys', { file: { type: 'string' } }, async ({ config, values, positionals }) => {
  const usage = 'usage: npm run keys -- create | rotate | list  [--file PATH] [--mode M]';
  const [command, ...rest] = positionals;
  if (rest.length > 0 || !['create', 'rotate', 'list'].includes(command ?? '')) throw new Error(usage);
  const given = (values.file as string | undefined) ?? (config.api.signing.private_key || DEFAULT_FILE);
  const file = path.resolve(projectRoot(), given);
  const out = (text: string): boolean => process.stdout.write(`${text}\n`);
  if (command === 'create') {
    if (existsSync(file)) throw new Error(`${given} exists already (npm run keys -- rotate replaces it and keeps it aside)`);
    const key = writeNewKey(file);
    out(`key ${idOf(key)} written to ${given} (mode 0600)`);
    out(`server side:  api.signing.private_key: ${given}`);
    out(`endpoints:    manager.trust.public_keys: [${publicKeyLine(key)}]`);
    return;
  }
  if (command === 'rotate') {
    let old: KeyObject;
    try {
      old = parsePrivateKey(readFileSync(file));
    } catch (err) {
      throw new Error(`${given}: ${(err as Error).message} (npm run keys -- create makes the first key)`);
    }
    const kept = file.replace(/(\.pem)?$/, `-${idOf(old)}.pem`);
    renameSync(file, kept);
    const key = writeNewKey(file);
    out(`key ${idOf(key)} written to ${given}; the previous key ${idOf(old)} kept as ${shown(kept)}`);
    out('1. on every endpoint host, trust both, and restart its managers:');
    out(`   manager.trust.public_keys: [${publicKeyLine(key)}, ${publicKeyLine(old)}]`);
    out('2. restart the API processes: they sign with the new key from then on');
    out(`3. once the tasks signed before have passed their deadlines, remove ${publicKeyLine(old)} from the endpoints`);
    return;
  }
  const trusted = new Map(config.manager.trust.public_keys.map((k) => [idOf(parsePublicKey(k)), k]));
  const dir = path.dirname(file);
  const local = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pem')).sort() : [];
  const seen = new Set<string>();
  for (const name of local) {
    let key: KeyObject;
    try {
      key = parsePrivateKey(readFileSync(path.join(dir, name)));
    } catch {
      continue;
    }
    const id = idOf(key);
    seen.add(id);
    const marks = [path.join(dir, name) === file ? 'signing' : 'kept', trusted.has(id) ? 'trusted' : 'not trusted here'];
    out(`${id}\t${shown(path.join(dir, name))}\t${marks.join(', ')}\t${publicKeyLine(key)}`);
  }
  for (const [id, line] of trusted) if (!seen.has(id)) out(`${id}\t(no private key here)\ttrusted\t${line}`);
  if (local.length === 0 && trusted.size === 0) out(`no keys (in ${shown(dir) || '.'}, or in manager.trust.public_keys)`);
}, undefined, { allowPositionals: true, readSigningKey: false });
