import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import { logContext } from '../lib/logger';

const VALID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Every answer carries `X-Request-Id`: the client's own when it sent a usable one (so a proxy's id follows
 * the request through), a new one otherwise. Every line logged while the request is handled carries it as
 * `req_id`, however deep the code that logs it, through the logger's mixin.
 */
export function requestIdMiddleware(): Middleware {
  return (ctx, next) => {
    const given = ctx.get('X-Request-Id');
    const reqId = VALID.test(given) ? given : randomUUID();
    ctx.set('X-Request-Id', reqId);
    return logContext.run({ req_id: reqId }, next);
  };
}
