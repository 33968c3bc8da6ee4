import type Router from '@koa/router';
import type { Metrics } from '../metrics';

/** `GET /metrics`: the Prometheus text exposition of this process's metrics. */
export function addMetricsRoutes(router: Router, metrics: Metrics): void {
  router.get('/metrics', async (ctx) => {
    const text = await metrics.scrape();
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Type', metrics.contentType);
    ctx.body = text;
  });
}
