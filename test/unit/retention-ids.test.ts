import assert from 'node:assert/strict';
import { ConfigError, validateConfig } from '../../config/schema';
import { retentionMs } from '../../api/retention';
import { readId } from '../../api/storage/sql-values';

const base = { mode: 'x', task_types: ['worker'] };

describe('ids beyond 32 bits and up to 2^53 - 1', function () {
  it('reads ids as numbers, whether the driver gives a number, a string or a bigint', function () {
    assert.equal(readId(5_000_000_000), 5_000_000_000);
    assert.equal(readId('5000000000'), 5_000_000_000);
    assert.equal(readId(2n ** 53n - 1n), Number.MAX_SAFE_INTEGER);
    assert.equal(readId('9007199254740991'), Number.MAX_SAFE_INTEGER);
  });

  it('refuses an id beyond 2^53 - 1 rather than answer a rounded one', function () {
    // mysql2 (bigNumberStrings: false) gives such a BIGINT as a string; as a number it would round to 2^53.
    assert.throws(() => readId('9007199254740993'), RangeError);
    assert.throws(() => readId('9007199254740992'), RangeError);
    assert.throws(() => readId(2n ** 63n - 1n), RangeError);
    assert.throws(() => readId('-1'), RangeError);
  });
});

describe('api.retention', function () {
  it('is off unless set, and takes days, hours or minutes', function () {
    assert.equal(validateConfig(base).api.retention, 'off');
    assert.equal(retentionMs('off'), null);
    assert.equal(retentionMs('30d'), 30 * 86_400_000);
    assert.equal(retentionMs('12h'), 12 * 3_600_000);
    assert.equal(retentionMs('90m'), 90 * 60_000);
    assert.equal(validateConfig({ ...base, api: { retention: '7d', retention_batch: 100 } }).api.retention_batch, 100);
  });

  for (const bad of ['30', '0d', '1w', '30 d', 'forever', '-1d', '1.5d']) {
    it(`rejects '${bad}' naming the key`, function () {
      assert.throws(() => validateConfig({ ...base, api: { retention: bad } }),
        (err: unknown) => err instanceof ConfigError && /config key 'api\.retention': must be off or a whole number of days, hours or minutes/.test(err.message));
    });
  }

  it('rejects a batch size out of bounds naming the key', function () {
    assert.throws(() => validateConfig({ ...base, api: { retention_batch: 0 } }), /config key 'api\.retention_batch'/);
  });
});
