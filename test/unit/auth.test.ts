import assert from 'node:assert/strict';
import { grants } from '../../api/auth';
import { hashSecret, parseToken, secretMatches } from '../../api/tokens';
import type { ApiToken } from '../../api/storage/rows';

describe('scopes and tokens', function () {
  it('grants a scope by name, submit:* every submit, admin everything', function () {
    assert.equal(grants(['read'], 'read'), true);
    assert.equal(grants(['read'], 'operate'), false);
    assert.equal(grants(['submit:worker'], 'submit:worker'), true);
    assert.equal(grants(['submit:worker'], 'submit:backup'), false);
    assert.equal(grants(['submit:*'], 'submit:backup'), true);
    assert.equal(grants(['submit:*'], 'read'), false);
    assert.equal(grants(['admin'], 'operate'), true);
    assert.equal(grants([], 'read'), false);
  });

  it('reads only well-formed tokens, and matches a secret by its hash', function () {
    const secret = 'a'.repeat(43);
    assert.deepEqual(parseToken(`tkr_0123456789abcdef_${secret}`), { key: '0123456789abcdef', secret });
    for (const bad of ['', 'tkr_', `tkr_0123456789ABCDEF_${secret}`, `tkr_0123456789abcdef_${secret}x`, `Bearer tkr_0123456789abcdef_${secret}`]) {
      assert.equal(parseToken(bad), null, bad);
    }
    const stored = { secret_hash: hashSecret(secret) } as ApiToken;
    assert.equal(secretMatches(stored, secret), true);
    assert.equal(secretMatches(stored, 'b'.repeat(43)), false);
  });
});
