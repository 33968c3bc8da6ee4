import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Metrics, MAX_ENDPOINT_LABELS } from '../../api/metrics';
import type { StoredEvent } from '../../api/storage/history';
import { ERRNR_ATTEMPTS_EXHAUSTED, ERRNR_HANDLER_TIMEOUT } from '../../protocol/wire';
import { docSection, readDoc } from '../support/docs';
import { parseMetrics, valueOf } from '../support/prometheus';

function event(kind: string, type: string, detail: Record<string, unknown> | null = null): StoredEvent {
  return { id: 1, task_id: 1, type, identifier: 'id-123', time: new Date().toISOString(), kind, detail, actor: null };
}

async function samples(m: Metrics) {
  return parseMetrics(await m.scrape());
}

describe('metrics', function () {
  it('shows every configured task type at 0 before any task, and no process metrics when asked not to', async function () {
    const s = await samples(new Metrics({ taskTypes: ['worker', 'backup'], processMetrics: false }));
    for (const name of ['tasker_tasks_created_total', 'tasker_tasks_done_total', 'tasker_tasks_incomplete_total', 'tasker_task_duration_seconds_count']) {
      for (const type of ['worker', 'backup']) assert.ok(s.some((x) => x.name === name && x.labels.type === type && x.value === 0), `${name}{type=${type}}`);
    }
    assert.ok(!s.some((x) => x.name.startsWith('process_') || x.name.startsWith('nodejs_')));
    assert.ok(!s.some((x) => x.labels.type === '_other'));
  });

  it('counts the tasks the resend job could not send, by type, from 0', async function () {
    const m = new Metrics({ taskTypes: ['worker', 'backup'], processMetrics: false });
    assert.ok((await samples(m)).some((x) => x.name === 'tasker_resend_failures_total' && x.labels.type === 'backup' && x.value === 0));
    m.resendFailed('worker');
    m.resendFailed('worker');
    m.resendFailed('legacy');
    const s = await samples(m);
    assert.equal(valueOf(s, 'tasker_resend_failures_total', { type: 'worker' }), 2);
    assert.equal(valueOf(s, 'tasker_resend_failures_total', { type: 'backup' }), 0);
    assert.equal(valueOf(s, 'tasker_resend_failures_total', { type: '_other' }), 1);
  });

  it('counts the transitions of committed history events by type, and responses by endpoint and outcome', async function () {
    const m = new Metrics({ taskTypes: ['worker'], endpoints: ['console1'], processMetrics: false });
    m.knowEndpoints(['console2']);
    m.recordEvents([
      event('created', 'worker'), event('created', 'worker'), event('sent', 'worker'), event('done', 'worker'),
      event('incomplete', 'worker'), event('cancelled', 'worker'), event('retried', 'worker'), event('received', 'worker'),
      event('finished', 'worker', { endpoints: [
        { endpoint: 'console1', round: 0, errnr: 0 }, { endpoint: 'console2', round: 0, errnr: 3 },
        { endpoint: 'console2', round: 0, errnr: ERRNR_HANDLER_TIMEOUT }, { endpoint: 'console1', round: 0, errnr: ERRNR_ATTEMPTS_EXHAUSTED },
        // Not in the registry: its name must not become a label value.
        { endpoint: 'stranger-42', round: 0, errnr: 0 },
      ] }),
      // A type no longer configured.
      event('created', 'legacy'),
    ]);
    const s = await samples(m);
    assert.equal(valueOf(s, 'tasker_tasks_created_total', { type: 'worker' }), 2);
    assert.equal(valueOf(s, 'tasker_tasks_created_total', { type: '_other' }), 1);
    for (const name of ['sent', 'done', 'incomplete', 'cancelled', 'retried']) assert.equal(valueOf(s, `tasker_tasks_${name}_total`, { type: 'worker' }), 1, name);
    const r = (endpoint: string, outcome: string) => valueOf(s, 'tasker_responses_total', { type: 'worker', endpoint, outcome });
    assert.equal(r('console1', 'succeeded'), 1);
    assert.equal(r('console2', 'error'), 1);
    assert.equal(r('console2', 'timed_out'), 1);
    assert.equal(r('console1', 'gave_up'), 1);
    assert.equal(r('_other', 'succeeded'), 1);
    assert.ok(!s.some((x) => Object.values(x.labels).some((v) => v.includes('stranger') || v.includes('id-123') || v === 'legacy')));
  });

  it('labels HTTP requests by route template, and requests no route matched as one value', async function () {
    const m = new Metrics({ taskTypes: ['worker'], processMetrics: false });
    m.observeHttp('POST', '/:type', 201, 0.002);
    m.observeHttp('POST', '/:type', 201, 0.004);
    m.observeHttp('GET', undefined, 404, 0.001);
    m.observeHttp('BREW', undefined, 405, 0.001);
    const s = await samples(m);
    assert.equal(valueOf(s, 'tasker_http_request_duration_seconds_count', { method: 'POST', route: '/:type', status: '201' }), 2);
    assert.equal(valueOf(s, 'tasker_http_request_duration_seconds_count', { method: 'GET', route: '_unmatched', status: '404' }), 1);
    assert.equal(valueOf(s, 'tasker_http_request_duration_seconds_count', { method: '_other', route: '_unmatched', status: '405' }), 1);
  });

  it('stops taking endpoint names at the cap', async function () {
    const m = new Metrics({ taskTypes: ['worker'], processMetrics: false });
    m.knowEndpoints(Array.from({ length: MAX_ENDPOINT_LABELS + 5 }, (_v, i) => `ep-${i}`));
    m.recordEvents([event('finished', 'worker', { endpoints: [
      { endpoint: 'ep-0', round: 0, errnr: 0 }, { endpoint: `ep-${MAX_ENDPOINT_LABELS + 1}`, round: 0, errnr: 0 },
    ] })]);
    const s = await samples(m);
    assert.equal(valueOf(s, 'tasker_responses_total', { type: 'worker', endpoint: 'ep-0', outcome: 'succeeded' }), 1);
    assert.equal(valueOf(s, 'tasker_responses_total', { type: 'worker', endpoint: '_other', outcome: 'succeeded' }), 1);
  });

  it('times DONE tasks from their creation, and counts job runs, failures and the tasks they touched', async function () {
    const m = new Metrics({ taskTypes: ['worker'], processMetrics: false });
    m.tasksDone([{ type: 'worker', startTime: new Date(1000), endTime: new Date(3500) }]);
    await m.job('sweep', async () => 3)();
    await m.job('sweep', async () => 0)();
    await assert.rejects(m.job('resend', async () => { throw new Error('database down'); })());
    m.collectorBatch(4, [Date.now() - 2000], Date.now());
    const s = await samples(m);
    assert.equal(valueOf(s, 'tasker_task_duration_seconds_sum', { type: 'worker' }), 2.5);
    assert.equal(valueOf(s, 'tasker_task_duration_seconds_bucket', { type: 'worker', le: '2.5' }), 1);
    assert.equal(valueOf(s, 'tasker_task_duration_seconds_bucket', { type: 'worker', le: '1' }), 0);
    assert.equal(valueOf(s, 'tasker_job_runs_total', { job: 'sweep', result: 'ok' }), 2);
    assert.equal(valueOf(s, 'tasker_job_tasks_total', { job: 'sweep' }), 3);
    assert.equal(valueOf(s, 'tasker_job_runs_total', { job: 'resend', result: 'error' }), 1);
    assert.equal(valueOf(s, 'tasker_collector_batch_size_sum'), 4);
    assert.ok(valueOf(s, 'tasker_collector_lag_seconds_sum') >= 2);
  });

  it('reads the broker and database state at scrape time', async function () {
    let connected = true;
    let up = true;
    const m = new Metrics({ taskTypes: ['worker'], processMetrics: false, live: { brokerConnected: () => connected, databaseUp: async () => up } });
    assert.equal(valueOf(await samples(m), 'tasker_broker_connected'), 1);
    assert.equal(valueOf(await samples(m), 'tasker_database_up'), 1);
    connected = false;
    up = false;
    const s = await samples(m);
    assert.equal(valueOf(s, 'tasker_broker_connected'), 0);
    assert.equal(valueOf(s, 'tasker_database_up'), 0);
  });

  it('shows the dead-letter queue\'s depth from the first look on, its last value after', async function () {
    const m = new Metrics({ taskTypes: ['worker'], processMetrics: false });
    assert.ok(!(await samples(m)).some((x) => x.name === 'tasker_dead_letter_messages'), 'no value before the first look: 0 would say empty');
    m.deadLetters(17);
    assert.equal(valueOf(await samples(m), 'tasker_dead_letter_messages'), 17);
    m.deadLetters(0);
    const s = await samples(m);
    assert.deepEqual(s.filter((x) => x.name === 'tasker_dead_letter_messages').map((x) => x.value), [0]);
    assert.ok(s.some((x) => x.name === 'tasker_job_runs_total' && x.labels.job === 'dead-letter-check'));
  });

  it('are each in the table of metrics of docs/monitoring.md with their type, and the table names no other', async function () {
    const m = new Metrics({ taskTypes: ['worker'], processMetrics: false, live: { brokerConnected: () => true, databaseUp: async () => true } });
    m.deadLetters(0);
    const registered = new Map((await m.registry.getMetricsAsJSON()).map((x) => [x.name, String(x.type)]));
    const section = docSection('docs/monitoring.md', '## Metrics');
    assert.ok(section, 'docs/monitoring.md has a Metrics section');
    const documented = new Map([...section.matchAll(/^\| `(tasker_[a-z_]+)` \| (\w+) \|/gm)].map((r) => [r[1], r[2]]));
    assert.deepEqual(Object.fromEntries([...documented].sort()), Object.fromEntries([...registered].sort()));
  });

  it('are alerted on by the rules docs/monitoring.md shows, as config/prometheus/alerts.yml has them', function () {
    const root = path.resolve(__dirname, '..', '..', '..');
    const readme = readDoc('docs/monitoring.md');
    const rules = readFileSync(path.join(root, 'config', 'prometheus', 'alerts.yml'), 'utf8');
    const shipped = rules.slice(rules.indexOf('groups:'));
    assert.ok(readme.includes(`\`\`\`yaml\n${shipped}\`\`\``), 'docs/monitoring.md\'s copy of alerts.yml differs from the file');
  });
});
