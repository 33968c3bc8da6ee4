import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import fc from 'fast-check';
import { Harness, Proc } from '../support/harness';
import { AnswerChecker, GeneratedRequest, requests, Violation } from '../support/openapi-check';

/** How many generated requests the property-based run makes (TASKER_FUZZ_RUNS). */
const RUNS = Number(process.env.TASKER_FUZZ_RUNS ?? 600);

/** Every route of the API, as the document must name it. */
const ROUTES = [
  'GET /openapi.json', 'GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /tokens', 'POST /tokens', 'DELETE /tokens/{name}', 'GET /endpoints', 'GET /endpoints/{name}/responses',
  'GET /events', 'POST /{type}', 'GET /{type}', 'GET /{type}/{identifier}', 'GET /{type}/{identifier}/responses',
  'GET /{type}/{identifier}/events', 'POST /{type}/{identifier}/retry', 'POST /{type}/{identifier}/cancel',
  'GET /schedules', 'POST /schedules', 'GET /schedules/{name}', 'PATCH /schedules/{name}', 'DELETE /schedules/{name}',
  'POST /schedules/{name}/pause', 'POST /schedules/{name}/resume',
  'GET /webhooks', 'POST /webhooks', 'GET /webhooks/{id}', 'PATCH /webhooks/{id}', 'DELETE /webhooks/{id}', 'GET /webhooks/{id}/deliveries',
  'POST /webhooks/{id}/deliveries/{delivery}/redeliver', 'POST /webhooks/{id}/test',
];

/**
 * GET /openapi.json: checked by a validator of OpenAPI documents, then held to by the running API under a
 * property-based run of requests generated from the document itself.
 */
describe('the OpenAPI document (standalone)', function () {
  const h = new Harness({ backend: 'standalone', waitTimeout: 2 });
  let proc: Proc;
  let doc: any;

  before(async function () {
    await h.setup(this);
    proc = await h.startAllInOne([{ name: 'console1', task_types: ['worker', 'backup'] }, { name: 'console2', task_types: ['worker'] }]);
    const res = await fetch(`${h.baseUrl}/openapi.json`);
    assert.equal(res.status, 200);
    doc = await res.json();
  });

  after(async function () {
    await h.teardown();
  });

  it('is a valid OpenAPI 3.1 document that covers every route, answer and error', async function () {
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
    assert.equal(doc.openapi, '3.1.0');
    const documented = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item as object).map((m) => `${m.toUpperCase()} ${p}`));
    for (const route of ROUTES) assert.ok(documented.includes(route), `${route} is documented`);
    for (const [p, item] of Object.entries<any>(doc.paths)) {
      for (const [m, op] of Object.entries<any>(item)) {
        assert.ok(op.operationId && op.summary, `${m} ${p} has an id and a summary`);
        assert.ok(op.responses['500'], `${m} ${p} documents its 500`);
        if (op.requestBody || op.parameters.some((x: any) => x.in === 'query')) assert.ok(op.responses['400'], `${m} ${p} documents its 400`);
      }
    }
    assert.deepEqual(doc.paths['/{type}'].post.parameters[0].schema.enum, ['worker', 'backup']);
  });

  it('finds no 5xx, no answer that contradicts the document and no crash in generated requests', async function () {
    this.timeout(300_000);
    const known = await h.post('worker', { identifier: 'fz-known', payload: { n: 1 }, endpoints: ['console1'] });
    assert.equal(known.status, 201);
    const checker = new AnswerChecker(doc);
    // The checker itself sees what it must.
    const probe: GeneratedRequest = { method: 'GET', path: '/worker/fz-known', template: '/{type}/{identifier}', query: [], headers: {} };
    assert.match(String(checker.check(probe, 418, 'application/json', '{}')), /not documented/);
    assert.match(String(checker.check(probe, 200, 'application/json', '{"task": {}}')), /does not match/);
    assert.match(String(checker.check(probe, 500, 'application/json', '{}')), /answered 500/);
    const violations: Violation[] = [];
    const statuses = new Map<number, number>();
    const send = async (req: GeneratedRequest): Promise<void> => {
      const url = new URL(h.baseUrl + req.path);
      for (const [k, v] of req.query) url.searchParams.append(k, v);
      const res = await fetch(url, { method: req.method, headers: req.headers, body: req.body });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const problem = checker.check(req, res.status, res.headers.get('content-type') ?? '', text);
      if (problem) violations.push({ request: req, status: res.status, problem });
    };
    const arb = requests(doc, {
      identifier: fc.constantFrom('fz-known', 'fz-other'),
      name: fc.constantFrom('console1', 'console2', 'nobody'),
    }, {
      // A valid wait holds the answer until the task ends: kept short so the run stays short.
      wait: fc.oneof(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.string({ maxLength: 6 })),
      // Cursors are opaque: some of the shape the API gives, some not.
      cursor: fc.oneof(fc.jsonValue({ maxDepth: 1 }).map((after) => Buffer.from(JSON.stringify({ after })).toString('base64url')), fc.string({ maxLength: 12 })),
    });
    await fc.assert(fc.asyncProperty(arb, async (req) => {
      await send(req);
    }), { numRuns: RUNS, seed: Number(process.env.TASKER_FUZZ_SEED ?? Date.now() % 2 ** 31) });
    console.log(`      ${RUNS} requests: ${[...statuses].sort().map(([s, n]) => `${n} × ${s}`).join(', ')}`);
    assert.deepEqual(violations.slice(0, 5), [], `${violations.length} answers contradict the document`);
    assert.equal(proc.child.exitCode, null, 'the API is still running');
    assert.equal((await h.get('openapi.json')).status, 200);
    // The run reached past validation: some requests were taken, some refused.
    assert.ok([200, 201].some((s) => (statuses.get(s) ?? 0) > 0), JSON.stringify([...statuses]));
    assert.ok((statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));
  });
});
