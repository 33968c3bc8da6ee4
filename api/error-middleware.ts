import type { Middleware } from 'koa';
import { BacklogFullError, NotFoundError, SelectorSyntaxError, TaskerError, TooManyRequestsError, TooManyStreamsError } from '../lib/errors';
import type { Logger } from '../lib/logger';

const HTTP_CODES: Record<number, string> = {
  404: 'not_found', 405: 'method_not_allowed', 413: 'payload_too_large', 501: 'not_implemented',
};

/**
 * The one place errors become responses: `{"error": {"code", "message"}}` (and `position`, the offset of
 * the offending character, for a `bad_selector`). Known errors keep their
 * status and message; anything else is a 500 whose details go to the log only.
 */
export function errorMiddleware(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new NotFoundError(`no route for ${ctx.method} ${ctx.path}`);
    } catch (err) {
      let status = 500;
      let code = 'internal_error';
      let message = 'internal error';
      const httpErr = err as { status?: unknown; expose?: unknown; message?: string };
      if (err instanceof TaskerError) {
        ({ status, code, message } = err);
      } else if (typeof httpErr.status === 'number' && httpErr.expose === true && httpErr.status < 500) {
        status = httpErr.status;
        code = HTTP_CODES[status] ?? `http_${status}`;
        message = httpErr.message ?? code;
      }
      // Shedding load is the answer working as meant; one log line per refused request would add to the load.
      if (err instanceof BacklogFullError || err instanceof TooManyStreamsError || err instanceof TooManyRequestsError) {
        ctx.set('Retry-After', String(err.retryAfter));
      } else if (status >= 500) log.error({ method: ctx.method, path: ctx.path, status, err }, 'request failed');
      ctx.status = status;
      // A client can point at the offending character of its selector.
      ctx.body = { error: { code, message, ...(err instanceof SelectorSyntaxError ? { position: err.position } : {}) } };
    }
  };
}
