import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiToken } from './storage/rows';
import type { TokenStore } from './storage/token-store';

/**
 * Bearer tokens: `tkr_<key>_<secret>`. The key (public, 16 hex characters) finds the stored token; the
 * secret (32 random bytes) is stored only as its SHA-256 and compared in constant time. A fast hash is
 * enough: the secret is random, not a password a person chose, so there is nothing to guess from it.
 */
const TOKEN_PATTERN = /^tkr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface PresentedToken {
  key: string;
  secret: string;
}

export function parseToken(text: string): PresentedToken | null {
  const m = TOKEN_PATTERN.exec(text);
  return m ? { key: m[1], secret: m[2] } : null;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Whether the presented secret is the stored token's, in time that does not depend on where they differ. */
export function secretMatches(stored: ApiToken, secret: string): boolean {
  return timingSafeEqual(Buffer.from(stored.secret_hash, 'hex'), Buffer.from(hashSecret(secret), 'hex'));
}

// Compared against when the key is unknown or revoked, so that such a refusal costs what a wrong secret costs.
const DUMMY_HASH = Buffer.from(hashSecret('no token has this secret'), 'hex');

/** Does a wrong secret's work (hash and constant-time comparison) for a key with no usable token; always false. */
export function noSecretMatches(secret: string): false {
  timingSafeEqual(DUMMY_HASH, Buffer.from(hashSecret(secret), 'hex'));
  return false;
}

/** Creates a token; the answer holds the only copy of its secret. */
export async function issueToken(store: TokenStore, name: string, scopes: string[], now = new Date()): Promise<{ token: string; stored: ApiToken }> {
  const key = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const stored = await store.create({ name, key, secret_hash: hashSecret(secret), scopes: [...new Set(scopes)], created_time: now });
  return { token: `tkr_${key}_${secret}`, stored };
}

export function tokenView(t: ApiToken): Record<string, unknown> {
  return {
    name: t.name, scopes: t.scopes, created_time: t.created_time.toISOString(),
    last_used_time: t.last_used_time?.toISOString() ?? null, revoked_time: t.revoked_time?.toISOString() ?? null,
  };
}
