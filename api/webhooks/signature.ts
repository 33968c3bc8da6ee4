import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): the secret is `whsec_` and the base64
 * of the key; a signature is `v1,` and the base64 of HMAC-SHA256(key, `<webhook-id>.<webhook-timestamp>.<body>`).
 */
export const SECRET_PREFIX = 'whsec_';

/** A new signing secret: 24 random bytes, as the specification suggests (between 24 and 64). */
export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString('base64');
}

/** The `webhook-signature` header of a message. */
export function sign(secret: string, id: string, timestampS: number, body: string): string {
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampS}.${body}`).digest('base64')}`;
}
