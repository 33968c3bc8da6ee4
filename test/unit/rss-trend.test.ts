import assert from 'node:assert/strict';
import { judge } from '../soak/rss-trend';

/** Samples every 2 s for `seconds`, RSS from `mib(t)`. */
function life(seconds: number, mib: (t: number) => number) {
  const samples = [];
  for (let t = 0; t <= seconds; t += 2) samples.push({ t, mib: mib(t) });
  return { name: 'tasker-api', pid: 1, samples };
}

describe('soak: RSS judged flat or growing', function () {
  it('fails a process whose RSS keeps growing (a leak of 30 % over the run)', function () {
    const v = judge(life(1800, (t) => 140 * (1 + 0.3 * t / 1800)), 60, 0.1, 60);
    assert.equal(v.judged, true);
    assert.equal(v.ok, false, `growth ${v.growth}`);
  });

  it('passes a flat process whose memory rises for a minute or two after a fault and comes back', function () {
    // The 30-minute soak's API: about 144 MiB, up to 172 MiB for 120 s after each database restart.
    const v = judge(life(1800, (t) => (t % 540 > 0 && t % 540 <= 120 && t > 500 ? 144 + (t % 540) * 0.23 : 144)), 60, 0.1, 60);
    assert.equal(v.judged, true);
    assert.equal(v.ok, true, `growth ${v.growth}`);
  });

  it('does not judge a life too short for a window after its warm-up and a last quarter', function () {
    const v = judge(life(60, () => 100), 60, 0.1, 60);
    assert.equal(v.judged, false);
  });

  it('does not judge a last quarter shorter than a database restart\'s rise could fill by half', function () {
    // The 2-minute run: a restart at 60 s raised the API from 148 to 166 MiB until the end.
    const short = judge(life(120, (t) => (t < 85 ? 148 : 166)), 10, 0.1, 60, 240);
    assert.equal(short.judged, false);
    assert.equal(short.ok, true);
    assert.equal(short.peakMiB, 166);
    const long = judge(life(1800, (t) => 140 * (1 + 0.3 * t / 1800)), 60, 0.1, 60, 240);
    assert.equal(long.judged, true);
    assert.equal(long.ok, false, `growth ${long.growth}`);
  });
});
