import { createHash, createPrivateKey, createPublicKey, KeyObject, sign, verify } from 'node:crypto';

/**
 * Signed task messages (docs/security.md "Signed tasks"). The server side signs each task message it publishes
 * with an Ed25519 key; an endpoint that trusts public keys runs only a task signed by one of them whose
 * deadline has not passed. The signature travels in the `tasker-signature` header:
 *
 *   v1;key=<key id>;deadline=<ISO 8601 time, UTC>;sig=<base64 of the 64-byte signature>
 *
 * and signs the bytes of `canonicalTaskBytes`: the message body byte for byte (so the task id, type,
 * identifier, round, payload and endpoints exactly as sent) through its SHA-256, with the deadline, which
 * the body does not carry. Defined here once, for the server side, the manager and the docs alike.
 */

export const SIGNATURE_HEADER = 'tasker-signature';
export const SIGNATURE_VERSION = 'v1';
/** The first line of the signed bytes: a signature of anything else can never pass for a task's. */
const DOMAIN = 'tasker-task-signature-v1';
/** An Ed25519 public key in DER (SubjectPublicKeyInfo) is this prefix and the 32 raw bytes. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The fields the signed bytes are made of, beside the body. */
export interface SignedFields {
  id: number;
  type: string;
  round: number;
  /** When the task's run is over, on the server side's (database's) clock. */
  deadline: Date;
}

/**
 * The signed bytes, UTF-8: six lines, each ended by `\n` — `tasker-task-signature-v1`, the task id, its
 * type, its round (0 for the first send), its deadline as `Date.toISOString()` gives it
 * (`2026-12-06T04:00:00.000Z`), and the SHA-256 of the message body in lower-case hex.
 */
export function canonicalTaskBytes(fields: SignedFields, body: Buffer): Buffer {
  const digest = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`${DOMAIN}\n${fields.id}\n${fields.type}\n${fields.round}\n${fields.deadline.toISOString()}\n${digest}\n`, 'utf8');
}

/** A key's id: the first 16 hex characters of the SHA-256 of its raw 32-byte public key. */
export function keyId(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** The raw 32 bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return der.subarray(SPKI_ED25519_PREFIX.length);
}

/** A public key as `manager.trust.public_keys` lists it. */
export function publicKeyLine(key: KeyObject): string {
  return `ed25519:${rawPublicKey(key).toString('base64')}`;
}

/** A key that cannot be used; the message says why, without the key's path or name (the caller adds those). */
export class SigningKeyError extends Error {}

/** A PEM private key, which must be Ed25519. */
export function parsePrivateKey(pem: Buffer | string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new SigningKeyError(`is not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`is a ${key.asymmetricKeyType ?? 'symmetric'} key, not an Ed25519 one`);
  return key;
}

/** A trusted key: the base64 of the raw 32 bytes, bare or after `ed25519:`. */
export function parsePublicKey(text: string): KeyObject {
  const m = /^(?:ed25519:)?([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?)$/.exec(text.trim());
  if (!m) throw new SigningKeyError('must be the base64 of a raw 32-byte Ed25519 public key, bare or after "ed25519:" (npm run keys -- list prints it)');
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(m[1], 'base64')]), format: 'der', type: 'spki' });
}

/** Signs with one private key: what the server side puts in the header. */
export class TaskSigner {
  readonly keyId: string;

  constructor(private readonly key: KeyObject) {
    this.keyId = keyId(rawPublicKey(key));
  }

  header(fields: SignedFields, body: Buffer): string {
    const sig = sign(null, canonicalTaskBytes(fields, body), this.key).toString('base64');
    return `${SIGNATURE_VERSION};key=${this.keyId};deadline=${fields.deadline.toISOString()};sig=${sig}`;
  }
}

/** Why a task is refused; `reason` is stable (a metric label, a log field), `message` says it to a person. */
export interface Refusal {
  reason: 'unsigned' | 'malformed' | 'unknown_key' | 'bad_signature' | 'expired';
  message: string;
}

export interface ParsedSignature {
  keyId: string;
  deadline: Date;
  sig: Buffer;
}

/** The header's fields, or why it cannot be read. */
export function parseSignatureHeader(value: unknown): ParsedSignature | Refusal {
  if (value === undefined || value === null) return { reason: 'unsigned', message: `unsigned (no ${SIGNATURE_HEADER} header)` };
  const text = Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : null;
  const malformed = (why: string): Refusal => ({ reason: 'malformed', message: `${SIGNATURE_HEADER} header ${why}` });
  if (text === null) return malformed('is not a string');
  const [version, ...parts] = text.split(';');
  if (version !== SIGNATURE_VERSION) return malformed(`has version '${version.slice(0, 16)}', not ${SIGNATURE_VERSION}`);
  const fields = new Map(parts.map((p) => {
    const i = p.indexOf('=');
    return i < 0 ? [p, ''] : [p.slice(0, i), p.slice(i + 1)];
  }));
  const kid = fields.get('key') ?? '';
  const deadline = new Date(fields.get('deadline') ?? '');
  const sig = Buffer.from(fields.get('sig') ?? '', 'base64');
  if (!/^[0-9a-f]{16}$/.test(kid)) return malformed('has no key id');
  if (Number.isNaN(deadline.getTime()) || deadline.toISOString() !== fields.get('deadline')) return malformed('has no deadline in the form 2026-12-06T04:00:00.000Z');
  if (sig.length !== 64) return malformed('has no 64-byte signature');
  return { keyId: kid, deadline, sig };
}

/** Checks signatures against trusted public keys (several at once while keys are rotated). */
export class TaskVerifier {
  private readonly keys: ReadonlyMap<string, KeyObject>;

  /** `skewMs`: how far the server side's clock may be behind this host's before a deadline counts as passed. */
  constructor(keys: readonly KeyObject[], private readonly skewMs: number) {
    this.keys = new Map(keys.map((k) => [keyId(rawPublicKey(k)), k]));
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /** null when the task may run; else why not. */
  check(header: unknown, task: { id: number; type: string; round?: number }, body: Buffer, now: Date): Refusal | null {
    const parsed = parseSignatureHeader(header);
    if ('reason' in parsed) return parsed;
    const key = this.keys.get(parsed.keyId);
    if (!key) return { reason: 'unknown_key', message: `signed by key ${parsed.keyId}, which this endpoint does not trust` };
    const fields = { id: task.id, type: task.type, round: task.round ?? 0, deadline: parsed.deadline };
    if (!verify(null, canonicalTaskBytes(fields, body), key, parsed.sig)) {
      return { reason: 'bad_signature', message: `signature by key ${parsed.keyId} does not match the message (altered, or forged)` };
    }
    if (parsed.deadline.getTime() + this.skewMs < now.getTime()) {
      return { reason: 'expired', message: `deadline ${parsed.deadline.toISOString()} passed (a late or replayed copy)` };
    }
    return null;
  }
}
