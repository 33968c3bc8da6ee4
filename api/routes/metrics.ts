import { Type } from '@sinclair/typebox';
import type { Metrics } from '../metrics';
import type { ApiRoutes } from '../operation';
import { NoQuery } from '../schemas';
import { answers } from './answers';

/** `GET /metrics`: the Prometheus text exposition of this process's metrics. */
export function addMetricsRoutes(routes: ApiRoutes, metrics: Metrics): void {
  routes.add({
    id: 'metrics', method: 'get', path: '/metrics', tag: 'health', scope: 'read', query: NoQuery,
    summary: 'This process\'s metrics, in the Prometheus text format',
    answers: answers({ 200: { description: 'the metrics', schema: Type.String(), contentType: 'text/plain; version=0.0.4' } }, [400]),
  }, async (ctx) => {
    const text = await metrics.scrape();
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Type', metrics.contentType);
    ctx.body = text;
  });
}
