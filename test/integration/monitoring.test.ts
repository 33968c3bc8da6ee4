import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Harness } from '../support/harness';
import { parseMetrics, promtool, promtoolCheckMetrics, Sample, valueOf } from '../support/prometheus';

const ENDPOINTS = ['console1', 'console2'];

/** Metrics, health and readiness of the API process, on RabbitMQ and MariaDB. */
describe('monitoring: /metrics, /healthz, /readyz', function () {
  const h = new Harness({
    waitTimeout: 3, env: { TASKER_TASK_TYPES: '[worker, backup, flaky]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers' },
  });
  // Identifiers no label may ever carry.
  const run = randomBytes(4).toString('hex');
  const id = (name: string): string => `mon-${run}-${name}`;
  const identifiers: string[] = [];

  before(async function () {
    await h.setup(this);
    await h.startSystem(ENDPOINTS.map((name) => ({ name, task_types: ['worker', 'backup', 'flaky'] })));
  });

  after(async function () {
    await h.teardown();
  });

  async function scrape(): Promise<{ text: string; samples: Sample[]; contentType: string | null }> {
    const res = await fetch(`${h.baseUrl}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    return { text, samples: parseMetrics(text), contentType: res.headers.get('content-type') };
  }

  async function post(type: string, name: string, body: Record<string, unknown>): Promise<void> {
    identifiers.push(id(name));
    const res = await h.post(type, { identifier: id(name), ...body });
    assert.equal(res.status, 201, JSON.stringify(res.json));
  }

  it('answers /healthz and /readyz while everything is up', async function () {
    const health = await h.get('healthz');
    assert.deepEqual(health, { status: 200, json: { status: 'ok' } });
    const ready = await h.get('readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json, { status: 'ready', checks: { database: 'up', migrations: 'current', broker: 'up' } });
  });

  it('moves the counters and histograms by what the tasks did, with labels only from the configuration and the registry', async function () {
    // The managers' register events stored: their names are known labels from then on.
    for (let i = 0; i < 50; i++) {
      const { json } = await h.get('endpoints');
      if (json.endpoints?.length === ENDPOINTS.length) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const before = (await scrape()).samples;

    for (let i = 0; i < 3; i++) await post('worker', `ok-${i}`, { payload: { sleep: 0 }, endpoints: ENDPOINTS });
    // One endpoint's handler fails (errnr 7), the other succeeds: DONE, with one failed response.
    await post('flaky', 'half', { payload: { sleep: 0, fail: ['console2'] }, endpoints: ENDPOINTS });
    // The backup handler always fails (errnr 32).
    await post('backup', 'fails', { payload: { sleep: 0 }, endpoints: ['console1'] });
    // console3 never runs: INCOMPLETE after the wait, by the sweep job.
    await post('worker', 'partial', { payload: { sleep: 0 }, endpoints: ['console1', 'console3'] });
    await post('worker', 'stopped', { payload: { sleep: 0 }, endpoints: ['console3'] });
    // The send is recorded just after the POST answers; a cancel before that would leave it unrecorded.
    await h.waitForStatus('worker', id('stopped'), ['SENT']);
    const cancelled = await h.post(`worker/${id('stopped')}/cancel`, {});
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));

    for (let i = 0; i < 3; i++) await h.waitForStatus('worker', id(`ok-${i}`), ['DONE']);
    await h.waitForStatus('flaky', id('half'), ['DONE']);
    await h.waitForStatus('backup', id('fails'), ['DONE']);
    const partial = await h.waitForStatus('worker', id('partial'), ['INCOMPLETE'], 20_000);
    assert.equal(partial.taskResponseList.find((r: any) => r.endpoint === 'console1').state, 'succeeded');
    // Not found: a 404 of a route template, never of its path.
    assert.equal((await h.get(`worker/${id('nowhere')}`)).status, 404);

    const after = await scrape();
    const moved = (name: string, labels: Record<string, string> = {}): number =>
      valueOf(after.samples, name, labels) - valueOf(before, name, labels);

    assert.equal(moved('tasker_tasks_created_total', { type: 'worker' }), 5);
    assert.equal(moved('tasker_tasks_created_total', { type: 'flaky' }), 1);
    assert.equal(moved('tasker_tasks_created_total', { type: 'backup' }), 1);
    assert.equal(moved('tasker_tasks_sent_total', { type: 'worker' }), 5);
    assert.equal(moved('tasker_tasks_sent_total', { type: 'flaky' }), 1);
    assert.equal(moved('tasker_tasks_done_total', { type: 'worker' }), 3);
    assert.equal(moved('tasker_tasks_done_total', { type: 'flaky' }), 1);
    assert.equal(moved('tasker_tasks_done_total', { type: 'backup' }), 1);
    assert.equal(moved('tasker_tasks_incomplete_total', { type: 'worker' }), 1);
    assert.equal(moved('tasker_tasks_cancelled_total', { type: 'worker' }), 1);
    assert.equal(moved('tasker_tasks_cancelled_total', { type: 'flaky' }), 0);

    const responses = (type: string, endpoint: string, outcome: string): number => moved('tasker_responses_total', { type, endpoint, outcome });
    assert.equal(responses('worker', 'console1', 'succeeded'), 4);
    assert.equal(responses('worker', 'console2', 'succeeded'), 3);
    assert.equal(responses('flaky', 'console1', 'succeeded'), 1);
    assert.equal(responses('flaky', 'console2', 'error'), 1);
    assert.equal(responses('flaky', 'console2', 'succeeded'), 0);
    assert.equal(responses('backup', 'console1', 'error'), 1);

    assert.equal(moved('tasker_task_duration_seconds_count', { type: 'worker' }), 3);
    assert.equal(moved('tasker_task_duration_seconds_count', { type: 'flaky' }), 1);
    assert.ok(moved('tasker_task_duration_seconds_sum', { type: 'worker' }) > 0);
    assert.equal(moved('tasker_http_request_duration_seconds_count', { method: 'POST', route: '/:type', status: '201' }), 7);
    assert.equal(moved('tasker_http_request_duration_seconds_count', { method: 'POST', route: '/:type/:identifier/cancel', status: '200' }), 1);
    assert.ok(moved('tasker_http_request_duration_seconds_count', { method: 'GET', route: '/:type/:identifier', status: '200' }) >= 6);
    assert.equal(moved('tasker_http_request_duration_seconds_count', { method: 'GET', route: '/:type/:identifier', status: '404' }), 1);

    // Receipts are held back `manager.receipt_delay`; these handlers finish first, so only results come.
    const results = moved('tasker_collector_events_total', { kind: 'result', outcome: 'stored' });
    assert.equal(results, 10);
    assert.ok(moved('tasker_collector_batch_size_count') >= 1);
    assert.ok(moved('tasker_collector_batch_size_sum') >= results);
    assert.ok(moved('tasker_collector_lag_seconds_count') >= results);
    assert.ok(moved('tasker_job_runs_total', { job: 'sweep', result: 'ok' }) >= 1);
    assert.ok(moved('tasker_job_runs_total', { job: 'resend', result: 'ok' }) >= 1);
    assert.equal(moved('tasker_job_tasks_total', { job: 'sweep' }), 1);
    assert.equal(valueOf(after.samples, 'tasker_broker_connected'), 1);
    assert.equal(valueOf(after.samples, 'tasker_database_up'), 1);
    assert.ok(valueOf(after.samples, 'process_cpu_seconds_total') > 0);
    assert.ok(valueOf(after.samples, 'process_resident_memory_bytes') > 0);

    // Cardinality: no label value is an identifier or a raw path, and every one comes from a known set.
    const values = new Set(after.samples.flatMap((s) => Object.values(s.labels)));
    for (const identifier of identifiers) {
      assert.ok(![...values].some((v) => v.includes(identifier)), `a label carries the identifier ${identifier}`);
    }
    const allowed: Record<string, (v: string) => boolean> = {
      type: (v) => ['worker', 'backup', 'flaky', '_other'].includes(v),
      endpoint: (v) => [...ENDPOINTS, '_other'].includes(v),
      route: (v) => v === '_unmatched' || /^\/(:type|endpoints|events|healthz|readyz|metrics)(\/[:a-z]+)*$/.test(v),
    };
    for (const s of after.samples.filter((x) => x.name.startsWith('tasker_'))) {
      for (const [label, ok] of Object.entries(allowed)) {
        if (label in s.labels) assert.ok(ok(s.labels[label]), `${s.name}: ${label}="${s.labels[label]}"`);
      }
    }
    assert.equal(after.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });

  it('passes promtool check metrics', async function () {
    this.timeout(900_000);
    const { text } = await scrape();
    const { code, output } = await promtoolCheckMetrics(text);
    assert.equal(code, 0, output);
    // The check does look: a gauge named like a counter is refused.
    const bad = await promtoolCheckMetrics('# HELP tasker_bad_total x\n# TYPE tasker_bad_total gauge\ntasker_bad_total 1\n');
    assert.notEqual(bad.code, 0);
  });

  it('ships alert rules that promtool accepts and that fire on the series they are for', async function () {
    this.timeout(900_000);
    const checked = await promtool(['check', 'rules', 'alerts.yml']);
    assert.equal(checked.code, 0, checked.output);
    assert.match(checked.output, /SUCCESS: 7 rules found/);
    const tested = await promtool(['test', 'rules', 'alerts.test.yml']);
    assert.equal(tested.code, 0, tested.output);
    const config = await promtool(['check', 'config', 'prometheus.yml']);
    assert.equal(config.code, 0, config.output);
  });
});
