import assert from 'node:assert/strict';
import { createLogger } from '../../lib/logger';
import { Metrics } from '../../api/metrics';
import { RefusalLog, REFUSAL_LOG_SENDERS } from '../../api/refusal-log';

function capture() {
  const lines: Record<string, any>[] = [];
  const destination = { write: (s: string): void => { for (const l of s.split('\n').filter(Boolean)) lines.push(JSON.parse(l)); } };
  return { log: createLogger({}, 'info', { destination }), lines };
}

describe('refusal log', function () {
  it('logs the first refusal of a sender and reason, then one line with the count of the others; counts every one', async function () {
    const { log, lines } = capture();
    const metrics = new Metrics({ taskTypes: ['worker'], processMetrics: false });
    const refusals = new RefusalLog(log, metrics, 60_000);
    for (let i = 0; i < 1000; i++) refusals.refused('unknown_task', 'a', 'refused', { taskId: i });
    refusals.refused('unknown_task', 'b', 'refused', { taskId: 1 });
    refusals.refused('too_large', 'a', 'too large', { bytes: 1 }, 1);
    assert.deepEqual(lines.map((l) => [l.msg, l.userId, l.reason, l.count]), [['refused', 'a', 'unknown_task', 1], ['refused', 'b', 'unknown_task', 1], ['too large', 'a', 'too_large', 1]]);
    refusals.stop();
    assert.equal(lines.length, 4);
    assert.deepEqual([lines[3].msg, lines[3].userId, lines[3].count, lines[3].taskId], ['refused (more in the interval)', 'a', 999, 1]);
    const text = await metrics.registry.metrics();
    assert.match(text, /^tasker_peer_refusals_total\{reason="unknown_task"\} 1001$/m);
    assert.match(text, /^tasker_peer_refusals_total\{reason="too_large"\} 1$/m);
  });

  it('gives senders past the first hundred of an interval one line together', function () {
    const { log, lines } = capture();
    const refusals = new RefusalLog(log, new Metrics({ taskTypes: ['worker'], processMetrics: false }), 60_000);
    for (let i = 0; i < 10_000; i++) refusals.refused('unknown_task', `claimed${i}`, 'refused', {});
    refusals.stop();
    assert.equal(lines.length, REFUSAL_LOG_SENDERS + 2);
    assert.deepEqual([lines.at(-1)?.userId, lines.at(-1)?.count], ['(other senders)', 10_000 - REFUSAL_LOG_SENDERS - 1]);
  });
});
