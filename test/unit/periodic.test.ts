import assert from 'node:assert/strict';
import pino from 'pino';
import { backoffMs, MAX_BACKOFF_MS, startPeriodic } from '../../lib/periodic';

describe('periodic jobs', function () {
  it('pause twice as long after each failure in a row, up to the cap, and the interval again once one succeeds', function () {
    assert.deepEqual([0, 1, 2, 3].map((n) => backoffMs(500, n)), [500, 1000, 2000, 4000]);
    assert.equal(backoffMs(500, 20), MAX_BACKOFF_MS);
    // An interval beyond the cap is never shortened.
    assert.equal(backoffMs(60_000, 3), 60_000);
  });

  it('log a run of failures once, and its end', async function () {
    const lines: { msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as { msg: string }); } });
    let calls = 0;
    const job = startPeriodic('flaky', 5, async () => {
      calls++;
      if (calls <= 3) throw new Error('down');
    }, logger);
    // Failures after 5, 10, 20 ms of pause; the fourth run succeeds.
    while (calls < 5) await new Promise((resolve) => setTimeout(resolve, 5));
    await job.stop();
    assert.deepEqual(lines.map((l) => l.msg), ['periodic job failed; retrying with backoff', 'periodic job recovered']);
  });
});
