import type { Context } from 'koa';
import { ForbiddenError, UnauthorizedError } from '../lib/errors';
import { guardDb } from './storage/database';
import type { ApiToken } from './storage/rows';
import type { TokenStore } from './storage/token-store';
import { parseToken, secretMatches } from './tokens';

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

/**
 * Checks bearer tokens against the stored ones. A verified token is trusted for `cacheMs` before it is
 * read again, so a request costs no database read; a revocation takes effect within that time.
 */
export class TokenGuard implements AccessGuard {
  private readonly cache = new Map<string, { token: ApiToken; until: number }>();

  constructor(private readonly store: TokenStore, private readonly cacheMs: number) {}

  async require(ctx: Context, scope: Scope): Promise<void> {
    const token = await this.verify(ctx.get('authorization'));
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer realm="tasker"');
      throw new UnauthorizedError();
    }
    if (!grants(token.scopes, scope)) throw new ForbiddenError(scope);
    (ctx.state as { actor?: string }).actor = token.name;
  }

  private async verify(header: string): Promise<ApiToken | null> {
    const m = /^Bearer +(\S+)$/i.exec(header);
    const presented = m ? parseToken(m[1]) : null;
    if (!presented) return null;
    const now = Date.now();
    let entry = this.cache.get(presented.key);
    if (!entry || entry.until <= now) {
      const token = await guardDb(() => this.store.findByKey(presented.key));
      if (!token || token.revoked_time !== null) {
        this.cache.delete(presented.key);
        return null;
      }
      // last_used_time is as fresh as the cache: one write per token and cache period at most.
      await guardDb(() => this.store.touch(token.id, new Date(now)));
      entry = { token, until: now + this.cacheMs };
      this.cache.set(presented.key, entry);
    }
    return secretMatches(entry.token, presented.secret) ? entry.token : null;
  }
}
