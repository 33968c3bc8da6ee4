import type { Middleware } from 'koa';
import type { Metrics } from './metrics';

/**
 * Times every request into `tasker_http_request_duration_seconds`, labelled with the route template
 * the router matched (`/:type/:identifier`), never the path, which holds identifiers.
 */
export function httpMetrics(metrics: Metrics): Middleware {
  return async (ctx, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
      metrics.observeHttp(ctx.method, typeof route === 'string' ? route : undefined, ctx.status, (performance.now() - started) / 1000);
    }
  };
}
