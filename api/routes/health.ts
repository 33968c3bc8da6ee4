import { Type } from '@sinclair/typebox';
import type { HealthChecks } from '../health';
import type { ApiRoutes } from '../operation';
import { NoQuery } from '../schemas';
import { errorAnswer } from './answers';

const Readiness = Type.Object({
  status: Type.Unsafe<'ready' | 'unready'>({ type: 'string', enum: ['ready', 'unready'] }),
  checks: Type.Record(Type.String(), Type.String(), { description: 'each dependency: `up`, or `down: <why>`' }),
});

/**
 * `GET /healthz`: the process is alive and serving (no dependency asked, so a database outage never gets
 * a healthy process restarted). `GET /readyz`: this instance can do its work now (database, its schema,
 * broker), for load balancers; 503 names what is down. Both unauthenticated and cheap.
 */
export function addHealthRoutes(routes: ApiRoutes, checks: HealthChecks, draining: () => boolean): void {
  routes.add({
    id: 'healthz', method: 'get', path: '/healthz', tag: 'health', scope: null, query: NoQuery,
    summary: 'The process is alive (asks no dependency)',
    answers: { 200: { description: 'alive', schema: Type.Object({ status: Type.Literal('ok') }) }, 400: errorAnswer(400), 500: errorAnswer(500) },
  }, async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });

  routes.add({
    id: 'readyz', method: 'get', path: '/readyz', tag: 'health', scope: null, query: NoQuery,
    summary: 'This instance can work now: database reachable, migrations current, broker connected',
    answers: {
      200: { description: 'ready', schema: Readiness }, 503: { description: 'unready: the checks name what is down', schema: Readiness },
      400: errorAnswer(400), 500: errorAnswer(500),
    },
  }, async (ctx) => {
    const { ready, checks: results } = await checks.readiness();
    // A process that is shutting down takes no new work: balancers should stop sending it any.
    const all = draining() ? { ...results, http: 'down: shutting down' } : results;
    const ok = ready && !draining();
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ready' : 'unready', checks: all };
  });
}
