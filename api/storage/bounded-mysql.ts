import mysql2 from 'mysql2';

/**
 * Time limits of one MySQL pool, in ms; 0 lifts one. Mutable: `migrate` lifts the query limit while the
 * migrations (long ALTERs) run.
 */
export interface DbBounds {
  /** Waiting for a pool connection (a free one, a new one, or the turn of a queued caller). */
  acquireMs: number;
  /** One statement, from the call until its answer. */
  queryMs: number;
}

type Callback = (err: Error | null, ...rest: unknown[]) => void;
type PoolConnection = mysql2.PoolConnection;

/** Error codes that `isTransientDbError` counts as "the database is unavailable". */
export const ACQUIRE_TIMEOUT = 'POOL_ACQUIRE_TIMEOUT';
export const QUERY_TIMEOUT = 'PROTOCOL_SEQUENCE_TIMEOUT';

function timeoutError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, fatal: true });
}

/**
 * A statement that outlived its limit: answered with an error, and its connection taken out of the pool
 * and closed. mysql2's own `timeout` option does neither: the connection goes back to the pool with the
 * statement still pending, and the next caller's statements queue behind it, unbounded.
 */
function boundQueries(conn: PoolConnection, bounds: DbBounds): void {
  const query = conn.query.bind(conn) as (...args: unknown[]) => unknown;
  const bounded = (...args: unknown[]): unknown => {
    const at = args.findIndex((a) => typeof a === 'function');
    if (bounds.queryMs <= 0 || at < 0) return query(...args);
    const cb = args[at] as Callback;
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      conn.destroy();
      // destroy() only half-closes the socket; a stalled server would keep it open until it wakes.
      (conn as unknown as { stream?: { destroy(): void } }).stream?.destroy();
      cb(timeoutError(QUERY_TIMEOUT, `no answer from the database within ${bounds.queryMs} ms`));
    }, bounds.queryMs);
    args[at] = (err: Error | null, ...rest: unknown[]) => {
      clearTimeout(timer);
      if (!settled) cb(err, ...rest);
    };
    return query(...args);
  };
  (conn as unknown as { query: unknown }).query = bounded;
}

/**
 * The pool typeorm gets: its `getConnection` gives up after `acquireMs` (mysql2's pool would queue a
 * caller for ever behind connections that never come back), and its connections bound every statement.
 * A connection that arrives for a caller who gave up goes straight back to the pool.
 */
class BoundedPool {
  private readonly bounded = new WeakSet<PoolConnection>();

  constructor(private readonly pool: mysql2.Pool, private readonly bounds: DbBounds) {}

  getConnection(cb: (err: Error | null, conn?: PoolConnection) => void): void {
    let settled = false;
    const timer = this.bounds.acquireMs > 0 ? setTimeout(() => {
      settled = true;
      cb(timeoutError(ACQUIRE_TIMEOUT, `no database connection within ${this.bounds.acquireMs} ms`));
    }, this.bounds.acquireMs) : null;
    this.pool.getConnection((err, conn) => {
      if (timer) clearTimeout(timer);
      if (settled) {
        if (!err) conn.release();
        return;
      }
      settled = true;
      if (err) return cb(err);
      if (!this.bounded.has(conn)) {
        boundQueries(conn, this.bounds);
        this.bounded.add(conn);
      }
      cb(null, conn);
    });
  }

  end(cb: (err?: Error | null) => void): void {
    this.pool.end(cb);
  }

  on(event: string, listener: (...args: unknown[]) => void): this {
    this.pool.on(event as 'connection', listener);
    return this;
  }
}

/** mysql2 as typeorm's `driver` option, its pools bounded by `bounds`. */
export function boundedMysql2(bounds: DbBounds): typeof mysql2 {
  return { ...mysql2, createPool: (options: mysql2.PoolOptions) => new BoundedPool(mysql2.createPool(options), bounds) } as unknown as typeof mysql2;
}
