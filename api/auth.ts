import type { Context } from 'koa';
import { ForbiddenError, TooManyRequestsError, UnauthorizedError } from '../lib/errors';
import { FailureLimiter } from './failure-limiter';
import { NegativeCache } from './negative-cache';
import { guardDb } from './storage/database';
import type { ApiToken } from './storage/rows';
import type { TokenStore } from './storage/token-store';
import { noSecretMatches, parseToken, PresentedToken, secretMatches } from './tokens';

/**
 * What a token may do: `submit:<task_type>` (or `submit:*`) to create tasks, `read` to read anything,
 * `operate` to retry and cancel, `admin` for everything (tokens included).
 */
export type Scope = 'read' | 'operate' | 'admin' | `submit:${string}`;
export const SCOPE_PATTERN = /^(read|operate|admin|submit:(\*|[a-z][a-z0-9_-]{0,31}))$/;

export function grants(scopes: readonly string[], needed: Scope): boolean {
  if (scopes.includes('admin') || scopes.includes(needed)) return true;
  return needed.startsWith('submit:') && scopes.includes('submit:*');
}

/** Who is calling, as recorded in the history of what they did: the token's name (null when the API is open). */
export function actorOf(ctx: Context): string | null {
  return (ctx.state as { actor?: string }).actor ?? null;
}

export interface AccessGuard {
  /** Throws 401 without a valid token, 403 without the scope; records the caller for `actorOf`. */
  require(ctx: Context, scope: Scope): Promise<void>;
}

/** The open API (`api.auth: off`): everyone may do everything. */
export const OPEN_ACCESS: AccessGuard = { require: async () => undefined };

/** Why a token check failed, as counted by `tasker_auth_failures_total`. */
export type AuthFailure = 'no_token' | 'malformed' | 'unknown_key' | 'revoked' | 'wrong_secret' | 'rate_limited';

export interface TokenGuardOptions {
  /** Seconds a token (or the absence of one) read from the database is trusted. */
  cacheMs: number;
  addressFailures: number;
  keyFailures: number;
  failureWindowMs: number;
  /** Most addresses, keys and unknown keys remembered. */
  tracked: number;
  onFailure?: (reason: AuthFailure) => void;
  onTokenRead?: () => void;
}

/**
 * Checks bearer tokens against the stored ones. A token read from the database is trusted for `cacheMs`
 * before it is read again, so a request costs no database read; a revocation takes effect within that
 * time. A failed check writes nothing, an unknown key is remembered as unknown for as long, and an
 * address or key with too many failures is answered 429 before anything is checked.
 */
export class TokenGuard implements AccessGuard {
  private readonly cache = new Map<string, { token: ApiToken; until: number; touched: boolean }>();
  private readonly unknown: NegativeCache;
  private readonly byAddress: FailureLimiter;
  private readonly byKey: FailureLimiter;

  constructor(private readonly store: TokenStore, private readonly options: TokenGuardOptions) {
    this.unknown = new NegativeCache(options.cacheMs, options.tracked);
    this.byAddress = new FailureLimiter(options.addressFailures, options.failureWindowMs, options.tracked);
    this.byKey = new FailureLimiter(options.keyFailures, options.failureWindowMs, options.tracked);
  }

  async require(ctx: Context, scope: Scope): Promise<void> {
    const now = Date.now();
    const m = /^Bearer +(\S+)$/i.exec(ctx.get('authorization'));
    const presented = m ? parseToken(m[1]) : null;
    const wait = Math.max(this.byAddress.retryAfter(ctx.ip, now), presented ? this.byKey.retryAfter(presented.key, now) : 0);
    if (wait > 0) {
      this.options.onFailure?.('rate_limited');
      throw new TooManyRequestsError(wait);
    }
    const outcome = presented ? await this.verify(presented, now) : (m ? 'malformed' : 'no_token');
    if (typeof outcome === 'string') {
      this.options.onFailure?.(outcome);
      // A request without a token is a client that has not been configured, not a guess.
      if (outcome !== 'no_token') this.byAddress.fail(ctx.ip, now);
      if (presented) this.byKey.fail(presented.key, now);
      ctx.set('WWW-Authenticate', 'Bearer realm="tasker"');
      throw new UnauthorizedError();
    }
    if (!grants(outcome.scopes, scope)) throw new ForbiddenError(scope);
    (ctx.state as { actor?: string }).actor = outcome.name;
  }

  private async verify(presented: PresentedToken, now: number): Promise<ApiToken | AuthFailure> {
    if (this.unknown.has(presented.key, now)) return noSecretMatches(presented.secret) || 'unknown_key';
    let entry = this.cache.get(presented.key);
    if (!entry || entry.until <= now) {
      this.options.onTokenRead?.();
      const token = await guardDb(() => this.store.findByKey(presented.key));
      if (!token || token.revoked_time !== null) {
        this.cache.delete(presented.key);
        this.unknown.add(presented.key, now);
        return noSecretMatches(presented.secret) || (token ? 'revoked' : 'unknown_key');
      }
      entry = { token, until: now + this.options.cacheMs, touched: false };
      this.cache.set(presented.key, entry);
    }
    if (!secretMatches(entry.token, presented.secret)) return 'wrong_secret';
    if (!entry.touched) {
      // last_used_time is as fresh as the cache, and written only for a request that proved the secret.
      await guardDb(() => this.store.touch(entry.token.id, new Date(now)));
      entry.touched = true;
    }
    return entry.token;
  }
}
