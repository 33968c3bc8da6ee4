import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { signedDeadline } from '../../api/publisher';
import type { Task } from '../../api/storage/rows';
import { ConfigError, loadConfig } from '../../config/loader';
import {
  canonicalTaskBytes, keyId, parsePrivateKey, parsePublicKey, parseSignatureHeader, publicKeyLine, rawPublicKey, SigningKeyError, TaskSigner, TaskVerifier,
} from '../../protocol/task-signature';
import { encode } from '../../protocol/wire';

const ed = () => generateKeyPairSync('ed25519');
const msg = { id: 42, identifier: 'backup-1', type: 'backup', payload: { db: 'main' }, endpoints: ['console1', 'console2'], start_time: '2026-12-06T03:00:00.000Z', round: 1 };
const deadline = new Date('2026-12-06T04:00:00.000Z');
const early = new Date('2026-12-06T03:30:00.000Z');

describe('signed tasks: the canonical form and its verification', function () {
  it('signs six lines: the domain, id, type, round, deadline and the SHA-256 of the body as sent', function () {
    const body = encode(msg);
    const digest = createHash('sha256').update(body).digest('hex');
    assert.equal(canonicalTaskBytes({ id: 42, type: 'backup', round: 1, deadline }, body).toString('utf8'),
      `tasker-task-signature-v1\n42\nbackup\n1\n2026-12-06T04:00:00.000Z\n${digest}\n`);
  });

  it('names a key by the first 16 hex characters of the SHA-256 of its raw public key, and reads back its public line', function () {
    const { publicKey, privateKey } = ed();
    const raw = rawPublicKey(publicKey);
    assert.equal(raw.length, 32);
    assert.deepEqual(rawPublicKey(privateKey), raw);
    assert.equal(keyId(raw), createHash('sha256').update(raw).digest('hex').slice(0, 16));
    const line = publicKeyLine(privateKey);
    assert.match(line, /^ed25519:[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(rawPublicKey(parsePublicKey(line)), raw);
    assert.deepEqual(rawPublicKey(parsePublicKey(line.slice('ed25519:'.length))), raw, 'bare base64 too');
  });

  it('refuses public keys that are not 32 raw bytes in base64, and private keys that are not Ed25519', function () {
    for (const bad of ['', 'ed25519:', 'ed25519:AAAA', `rsa:${Buffer.alloc(32).toString('base64')}`, Buffer.alloc(33).toString('base64')]) {
      assert.throws(() => parsePublicKey(bad), SigningKeyError, bad);
    }
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    assert.throws(() => parsePrivateKey(rsa), /is a rsa key, not an Ed25519 one/);
    assert.throws(() => parsePrivateKey('not a key'), /is not a PEM private key/);
  });

  it('accepts what a trusted key signed, before its deadline (with the skew allowed)', function () {
    const { privateKey, publicKey } = ed();
    const body = encode(msg);
    const header = new TaskSigner(privateKey).header({ id: 42, type: 'backup', round: 1, deadline }, body);
    assert.match(header, /^v1;key=[0-9a-f]{16};deadline=2026-12-06T04:00:00\.000Z;sig=[A-Za-z0-9+/]{86}==$/);
    const verifier = new TaskVerifier([ed().publicKey, publicKey], 60_000);
    assert.equal(verifier.check(header, msg, body, early), null);
    assert.equal(verifier.check(Buffer.from(header), msg, body, early), null, 'as a byte string header too');
    assert.equal(verifier.check(header, msg, body, new Date(deadline.getTime() + 59_000)), null, 'within the skew');
  });

  it('refuses an unsigned, malformed, altered, foreign-signed or expired task, each with its reason', function () {
    const { privateKey, publicKey } = ed();
    const body = encode(msg);
    const signer = new TaskSigner(privateKey);
    const header = signer.header({ id: 42, type: 'backup', round: 1, deadline }, body);
    const verifier = new TaskVerifier([publicKey], 60_000);
    const reason = (h: unknown, m = msg, b = body, now = early): string | undefined => verifier.check(h, m, b, now)?.reason;
    assert.equal(reason(undefined), 'unsigned');
    assert.equal(reason('v2;key=0123456789abcdef'), 'malformed');
    assert.equal(reason(header.replace(/sig=.*/, 'sig=AAAA')), 'malformed');
    assert.equal(reason(header.replace(/deadline=[^;]*/, 'deadline=tomorrow')), 'malformed');
    // The payload changed under the real signature.
    const altered = encode({ ...msg, payload: { db: 'all' } });
    assert.equal(reason(header, msg, altered), 'bad_signature');
    // Another endpoint list, round or id under the real signature.
    assert.equal(reason(header, msg, encode({ ...msg, endpoints: ['console1', 'console2', 'evil'] })), 'bad_signature');
    assert.equal(reason(header, { ...msg, round: 2 }), 'bad_signature');
    assert.equal(reason(header, { ...msg, id: 43 }), 'bad_signature');
    // A later deadline written into the real signature's header.
    assert.equal(reason(header.replace('2026-12-06T04:00', '2027-12-06T04:00')), 'bad_signature');
    // Signed by a key this endpoint does not trust, with the trusted key's id claimed.
    const foreign = new TaskSigner(ed().privateKey).header({ id: 42, type: 'backup', round: 1, deadline }, body);
    assert.equal(reason(foreign), 'unknown_key');
    const claimed = foreign.replace(/key=[0-9a-f]+/, `key=${signer.keyId}`);
    assert.equal(reason(claimed), 'bad_signature');
    // A real signature replayed after its deadline (and the skew).
    const late = verifier.check(header, msg, body, new Date(deadline.getTime() + 61_000));
    assert.equal(late?.reason, 'expired');
    assert.match(late?.message ?? '', /deadline 2026-12-06T04:00:00\.000Z passed/);
  });

  it('signs with Ed25519 exactly as another implementation would (pure signature over the canonical bytes)', function () {
    const { privateKey, publicKey } = ed();
    const body = encode(msg);
    const fields = { id: 42, type: 'backup', round: 1, deadline };
    const sig = sign(null, canonicalTaskBytes(fields, body), privateKey).toString('base64');
    const header = `v1;key=${keyId(rawPublicKey(publicKey))};deadline=${deadline.toISOString()};sig=${sig}`;
    assert.equal(new TaskSigner(privateKey).header(fields, body), header, 'Ed25519 is deterministic');
    const parsed = parseSignatureHeader(header);
    assert.ok(!('reason' in parsed));
  });
});

describe('configuration: signing keys', function () {
  let dir: string;
  const load = (env: Record<string, string>) => loadConfig({ mode: 'x', configDir: dir, env });

  before(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-keys-'));
    writeFileSync(path.join(dir, 'x.config.yaml'), 'task_types: [worker]\n');
    writeFileSync(path.join(dir, 'ed.pem'), ed().privateKey.export({ format: 'pem', type: 'pkcs8' }));
    writeFileSync(path.join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
  });

  it('is off by default: no key, nothing required', function () {
    const c = load({});
    assert.equal(c.api.signing.private_key, '');
    assert.equal(c.api.signing.required, false);
    assert.deepEqual(c.manager.trust.public_keys, []);
    assert.equal(c.manager.trust.max_skew, 60);
  });

  it('reads the private key at load, naming the key when the file is missing or not an Ed25519 key', function () {
    assert.equal(load({ TASKER_API__SIGNING__PRIVATE_KEY: path.join(dir, 'ed.pem') }).api.signing.private_key, path.join(dir, 'ed.pem'));
    assert.throws(() => load({ TASKER_API__SIGNING__PRIVATE_KEY: path.join(dir, 'none.pem') }),
      (e: Error) => e instanceof ConfigError && /config key 'api\.signing\.private_key': cannot read .*none\.pem: ENOENT/.test(e.message));
    assert.throws(() => load({ TASKER_API__SIGNING__PRIVATE_KEY: path.join(dir, 'rsa.pem') }),
      (e: Error) => e instanceof ConfigError && /config key 'api\.signing\.private_key': .*rsa\.pem is a rsa key, not an Ed25519 one/.test(e.message));
     // What `npm run keys -- create` loads: the file it is to write need not exist yet.
    const missing = path.join(dir, 'to-be-made.pem');
    assert.equal(loadConfig({ mode: 'x', configDir: dir, env: { TASKER_API__SIGNING__PRIVATE_KEY: missing }, readSigningKey: false }).api.signing.private_key, missing);
  });

  it('takes trusted keys as a list or a comma-separated string, and names the one that is not a key', function () {
    const a = publicKeyLine(ed().publicKey);
    const b = rawPublicKey(ed().publicKey).toString('base64');
    assert.deepEqual(load({ TASKER_MANAGER__TRUST__PUBLIC_KEYS: `${a}, ${b}` }).manager.trust.public_keys, [a, b]);
    assert.deepEqual(load({ TASKER_MANAGER__TRUST__PUBLIC_KEYS: `[${a}]` }).manager.trust.public_keys, [a]);
    assert.throws(() => load({ TASKER_MANAGER__TRUST__PUBLIC_KEYS: `${a},ed25519:short` }),
      (e: Error) => e instanceof ConfigError && /config key 'manager\.trust\.public_keys\[1\]': must be the base64 of a raw 32-byte Ed25519 public key/.test(e.message));
    assert.throws(() => load({ TASKER_MANAGER__TRUST__UNKNOWN: '1' }), /manager\.trust/);
  });
});

describe('signed tasks: the deadline a send is signed with', function () {
  const task = (over: Partial<Task>): Task => ({
    id: 1, identifier: 'a', type: 'worker', status: 'CREATED', payload: null, endpoints: ['e'], expected_endpoints: ['e'], expected_count: 1,
    received_count: 0, finished_count: 0, failed_count: 0, request_hash: 'h', start_time: new Date('2026-12-06T03:00:00Z'), sent_time: null,
    end_time: null, last_modified_time: new Date('2026-12-06T03:00:00Z'), rollout: null, timeout: 600, deadline: new Date('2026-12-06T03:10:00Z'),
    selector: null, ...over,
  } as Task);

  it('is the stored deadline for a task sent before (a rollout batch, a retried round), whatever the time', function () {
    const sent = task({ sent_time: new Date('2026-12-06T03:00:01Z'), deadline: new Date('2026-12-06T03:10:01Z') });
    assert.equal(signedDeadline(sent, new Date('2026-12-06T05:00:00Z')).toISOString(), '2026-12-06T03:10:01.000Z');
  });

  it('counts from now for a task not sent yet that the resend job sends late, as its confirm will', function () {
    assert.equal(signedDeadline(task({}), new Date('2026-12-06T05:00:00Z')).toISOString(), '2026-12-06T05:10:00.000Z');
    assert.equal(signedDeadline(task({}), new Date('2026-12-06T03:00:00.500Z')).toISOString(), '2026-12-06T03:10:00.500Z');
    assert.equal(signedDeadline(task({})).toISOString(), '2026-12-06T03:10:00.000Z', 'a first send: the deadline just stored');
    assert.equal(signedDeadline(task({ deadline: null })).toISOString(), '2026-12-06T03:10:00.000Z', 'no deadline stored: from its creation');
  });
});
