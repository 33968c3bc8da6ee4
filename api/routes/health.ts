import type Router from '@koa/router';
import type { HealthChecks } from '../health';

/**
 * `GET /healthz`: the process is alive and serving (no dependency asked, so a database outage never gets
 * a healthy process restarted). `GET /readyz`: this instance can do its work now (database, its schema,
 * broker), for load balancers; 503 names what is down. Both unauthenticated and cheap.
 */
export function addHealthRoutes(router: Router, checks: HealthChecks, draining: () => boolean): void {
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const { ready, checks: results } = await checks.readiness();
    // A process that is shutting down takes no new work: balancers should stop sending it any.
    const all = draining() ? { ...results, http: 'down: shutting down' } : results;
    const ok = ready && !draining();
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ready' : 'unready', checks: all };
  });
}
