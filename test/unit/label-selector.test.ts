import assert from 'node:assert/strict';
import { InvalidRequestError, SelectorSyntaxError, TaskerError } from '../../lib/errors';
import {
  formatSelector, matches, parseLabelList, parseSelector, validateLabelKey, validateLabels, validateLabelValue,
} from '../../protocol/label-selector';

/** Asserts that `text` is refused at `position`, with a message naming that position and matching `pattern`. */
function refuses(text: string, position: number, pattern: RegExp): void {
  assert.throws(() => parseSelector(text), (err: unknown) => {
    assert.ok(err instanceof SelectorSyntaxError, String(err));
    assert.equal(err.position, position, `${JSON.stringify(text)}: ${err.message}`);
    assert.match(err.message, pattern);
    assert.match(err.message, new RegExp(`at position ${position}\\b`));
    return true;
  }, JSON.stringify(text));
}

const web = { role: 'web', region: 'eu', tier: 'frontend' };
const db = { role: 'db', region: 'us', tier: 'db', canary: '' };
const bare = {};

/** Which of web, db and bare (no labels) the selector picks. */
function picks(text: string): string[] {
  const s = parseSelector(text);
  return Object.entries({ web, db, bare }).filter(([, labels]) => matches(s, labels)).map(([name]) => name);
}

describe('label selectors', function () {
  describe('matching', function () {
    it('= and == pick the key with that value; a server without the key is not picked', function () {
      assert.deepEqual(picks('role=web'), ['web']);
      assert.deepEqual(picks('role==db'), ['db']);
      assert.deepEqual(picks('role=cache'), []);
    });

    it('!= picks other values and servers without the key (Kubernetes semantics)', function () {
      assert.deepEqual(picks('role!=web'), ['db', 'bare']);
      assert.deepEqual(picks('role,role!=web'), ['db'], 'a key that must also be present');
    });

    it('in picks one of the values; a server without the key is not picked', function () {
      assert.deepEqual(picks('region in (eu,us)'), ['web', 'db']);
      assert.deepEqual(picks('region in (eu)'), ['web']);
      assert.deepEqual(picks('region in (ap,sa)'), []);
    });

    it('notin picks none of the values and servers without the key (Kubernetes semantics)', function () {
      assert.deepEqual(picks('region notin (eu)'), ['db', 'bare']);
      assert.deepEqual(picks('region notin (eu,us)'), ['bare']);
    });

    it('a bare key picks servers with it, whatever its value (empty too); !key those without it', function () {
      assert.deepEqual(picks('canary'), ['db']);
      assert.deepEqual(picks('!canary'), ['web', 'bare']);
      assert.deepEqual(picks('role'), ['web', 'db']);
      assert.deepEqual(picks('!role'), ['bare']);
    });

    it('every requirement must hold', function () {
      assert.deepEqual(picks('role=web,region in (eu,us),!canary,tier!=db'), ['web']);
      assert.deepEqual(picks('role=web,region=us'), []);
      assert.deepEqual(picks('role in (web,db),role!=db'), ['web'], 'one key in two requirements');
    });

    it('the empty value is a value: role= matches an empty label only', function () {
      assert.deepEqual(picks('canary='), ['db']);
      assert.deepEqual(picks('canary=='), ['db']);
      assert.deepEqual(picks('canary!='), ['web', 'bare']);
      assert.deepEqual(picks('canary in (x,)'), ['db']);
    });

    it('finds no label on Object.prototype', function () {
      assert.equal(matches(parseSelector('constructor'), {}), false);
      assert.equal(matches(parseSelector('!toString'), {}), true);
      assert.equal(matches(parseSelector('constructor=x'), { constructor: 'x' }), true);
    });

    it('matches prefixed keys', function () {
      const s = parseSelector('example.com/role=web,k8s.io/arch in (amd64)');
      assert.equal(matches(s, { 'example.com/role': 'web', 'k8s.io/arch': 'amd64' }), true);
      assert.equal(matches(s, { role: 'web', 'k8s.io/arch': 'amd64' }), false);
    });

    it('the selector with no requirements (allowEmpty) matches everything', function () {
      const s = parseSelector('  ', { allowEmpty: true });
      assert.deepEqual(s, []);
      assert.equal(matches(s, {}), true);
      assert.equal(formatSelector(s), '');
    });
  });

  describe('parsing', function () {
    it('reads requirements in the order written, == as =, value lists without repeats', function () {
      assert.deepEqual(parseSelector('b=1,a==2,c!=3,d in (x,y,x),e notin (z),f,!g'), [
        { key: 'b', operator: '=', values: ['1'] },
        { key: 'a', operator: '=', values: ['2'] },
        { key: 'c', operator: '!=', values: ['3'] },
        { key: 'd', operator: 'in', values: ['x', 'y'] },
        { key: 'e', operator: 'notin', values: ['z'] },
        { key: 'f', operator: 'exists', values: [] },
        { key: 'g', operator: 'does_not_exist', values: [] },
      ]);
    });

    it('takes whitespace around every token', function () {
      const canonical = 'role=web,region in (eu,us),!canary,tier!=db,zone notin (a)';
      for (const text of [
        canonical,
        ' role = web , region in ( eu , us ) , ! canary , tier != db , zone notin(a) ',
        'role==web,region in(eu,us),!canary,tier!=db,zone notin (a)',
        '\trole\n=\r\nweb,region\tin\t(eu,us),!canary,tier !=db,zone  notin  (  a  )\n',
      ]) assert.equal(formatSelector(parseSelector(text)), canonical, JSON.stringify(text));
    });

    it('reads in and notin after an operator as values, and as keys at the start', function () {
      assert.deepEqual(parseSelector('role=in,x!=notin'), [
        { key: 'role', operator: '=', values: ['in'] }, { key: 'x', operator: '!=', values: ['notin'] },
      ]);
      assert.deepEqual(parseSelector('in in (notin)'), [{ key: 'in', operator: 'in', values: ['notin'] }]);
    });

    it('reads empty entries of a value list as the empty value, as Kubernetes does', function () {
      assert.deepEqual(parseSelector('a in (,x)')[0].values, ['', 'x']);
      assert.deepEqual(parseSelector('a in (x,,y)')[0].values, ['x', '', 'y']);
      assert.deepEqual(parseSelector('a notin (,)')[0].values, ['']);
    });

    it('gives a frozen selector', function () {
      const s = parseSelector('a in (x,y)');
      assert.ok(Object.isFrozen(s) && Object.isFrozen(s[0]) && Object.isFrozen(s[0].values));
      assert.throws(() => { (s[0].values as string[]).push('z'); }, TypeError);
    });

    it('formats canonically, and what it formats parses back to the same selector', function () {
      for (const text of [
        'role=web', 'role==web', 'role=', 'role!=', 'a in (,)', 'a in (x,)', 'a notin (,x)', 'example.com/role in (web,db)',
        '!a,b,c=d,e!=f,g in (h),i notin (j,k)',
      ]) {
        const s = parseSelector(text);
        assert.deepEqual(parseSelector(formatSelector(s)), s, `${text} → ${formatSelector(s)}`);
      }
      assert.equal(formatSelector(parseSelector(' b == 1 , a in ( y , x , y ) ')), 'b=1,a in (y,x)');
    });
  });

  describe('bad selectors', function () {
    it('is a bad_selector TaskerError, status 400', function () {
      const err = (() => { try { parseSelector('role in (a,b))'); } catch (e) { return e; } })();
      assert.ok(err instanceof TaskerError);
      assert.equal(err.code, 'bad_selector');
      assert.equal(err.status, 400);
      assert.equal(err.message, "unexpected ')' (expected ',' or end of selector) at position 13: role in (a,b))");
    });

    it('refuses an empty or blank selector unless asked', function () {
      refuses('', 0, /selector is empty/);
      refuses('  \t', 0, /selector is empty/);
    });

    it('refuses stray commas', function () {
      refuses('role=web,', 8, /trailing ','/);
      refuses('role=web , ', 9, /trailing ','/);
      refuses(',role=web', 0, /unexpected ','/);
      refuses('role=web,,region=eu', 9, /unexpected ','.*label key/);
      refuses('role,', 4, /trailing ','/);
    });

    it('refuses in and notin without a parenthesised list', function () {
      refuses('role in a', 8, /unexpected 'a' \(expected '\(' after 'in'\)/);
      refuses('role notin', 10, /unexpected end of selector \(expected '\(' after 'notin'\)/);
      refuses('role in (a,b', 12, /unexpected end of selector \(expected ',' or '\)'\)/);
      refuses('role in (a b)', 11, /unexpected 'b'/);
    });

    it('refuses an empty value list', function () {
      refuses('role in ()', 9, /'in' needs at least one value/);
      refuses('role notin ( )', 13, /'notin' needs at least one value/);
    });

    it('refuses unbalanced parentheses', function () {
      refuses('role in (a,b))', 13, /unexpected '\)'/);
      refuses('role in ((a,b)', 9, /unexpected '\('/);
      refuses('role in (a,(b))', 11, /unexpected '\('/);
      refuses('(role=web)', 0, /unexpected '\('/);
      refuses('role=web)', 8, /unexpected '\)'/);
    });

    it('refuses characters that no key holds, at that character', function () {
      refuses('role@x=web', 4, /unexpected '@'/);
      refuses('rôle=web', 1, /unexpected 'ô'/);
      refuses('role=web,😀=x', 9, /unexpected '😀'/);
      refuses('role=w\u0001b', 6, /unexpected '\\u0001'/);
      refuses('role="web"', 5, /unexpected '"'/);
    });

    it('refuses keys against the Kubernetes rules, at the key', function () {
      refuses('-role=web', 0, /label key '-role': the name must be/);
      refuses('region,role_=web', 7, /label key 'role_'/);
      refuses('a/b/c', 0, /more than one '\/'/);
      refuses('/role=web', 0, /prefix before '\/' is empty/);
      refuses('example.com/=web', 0, /name after '\/' is empty/);
      refuses('Example.com/role=web', 0, /prefix must be a DNS subdomain/);
      refuses('example..com/role', 0, /prefix must be a DNS subdomain/);
      refuses(`x,${'k'.repeat(64)}=v`, 2, /name is longer than 63 characters/);
      refuses(`!${'p'.repeat(254)}/role`, 1, /prefix is longer than 253 characters/);
    });

    it('takes keys and values at their length limits', function () {
      const key = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}/${'n'.repeat(63)}`;
      assert.equal(key.length, 253 + 1 + 63);
      assert.deepEqual(parseSelector(`${key}=${'v'.repeat(63)}`), [{ key, operator: '=', values: ['v'.repeat(63)] }]);
    });

    it('refuses values against the Kubernetes rules, at the value', function () {
      refuses(`role=${'v'.repeat(64)}`, 5, /label value 'v+' is longer than 63 characters/);
      refuses('role in (a,-b)', 11, /label value '-b' must be empty or/);
      refuses('role!=a/b', 6, /label value 'a\/b'/);
      refuses('role=web.', 5, /label value 'web\.'/);
    });

    it('tells an operator without a value (the empty value, taken) from one followed by something else', function () {
      assert.deepEqual(parseSelector('role==,x')[0], { key: 'role', operator: '=', values: [''] });
      refuses('role==)', 6, /unexpected '\)' \(expected a value\)/);
      refuses('role===web', 6, /unexpected '=' \(expected a value\)/);
      refuses('role=!web', 5, /unexpected '!' \(expected a value\)/);
      refuses('role=(web)', 5, /unexpected '\('/);
      refuses('role=web prod', 9, /unexpected 'prod' \(expected ',' or end of selector\)/);
    });

    it('refuses unknown operators, at the operator', function () {
      refuses('role>3', 4, /unexpected '>' \(expected an operator \(=, ==, !=, in, notin\)/);
      refuses('role < 3', 5, /unexpected '<'/);
      refuses('role~x', 4, /unexpected '~'/);
      refuses('role =~ x', 6, /unexpected '~' \(expected a value\)/);
      refuses('role is web', 5, /unexpected 'is' \(expected an operator/);
      refuses('role!', 4, /unexpected '!' \(expected an operator/);
      refuses('role ! = web', 5, /unexpected '!'/);
    });

    it('refuses an operator after !key, and a ! without a key', function () {
      refuses('!role=web', 5, /'!role' means the key is absent and takes no operator/);
      refuses('!role in (a)', 6, /unexpected 'in'/);
      refuses('!', 1, /unexpected end of selector \(expected a label key\)/);
      refuses('!!role', 1, /unexpected '!' \(expected a label key\)/);
      refuses('=web', 0, /unexpected '=' \(expected a label key or '!'\)/);
    });

    it('shows an excerpt around the position of a long selector', function () {
      const long = `${'a=b,'.repeat(50)}role>3,${'c=d,'.repeat(50)}e`;
      assert.throws(() => parseSelector(long), (err: SelectorSyntaxError) => {
        assert.equal(err.position, 204);
        assert.ok(err.message.length < 200, err.message);
        assert.match(err.message, /at position 204: …[a=b,]+,role>3,[c=d,]+…$/);
        assert.equal(err.message.split(': ')[1].indexOf('>'), 41, 'the excerpt begins 40 characters before the position (after the …)');
        return true;
      });
    });
  });

  describe('label keys, values and lists', function () {
    it('validates keys and values, naming them', function () {
      for (const good of ['role', 'a', 'A-b_c.d', 'example.com/role', 'tasker.io/os', '9']) assert.equal(validateLabelKey(good), null, good);
      assert.match(validateLabelKey('') ?? '', /must not be empty/);
      assert.match(validateLabelKey('ro le') ?? '', /label key 'ro le': the name must be letters/);
      assert.match(validateLabelKey('EXAMPLE.com/x') ?? '', /'EXAMPLE\.com\/x'.*DNS subdomain/);
      assert.match(validateLabelKey('x'.repeat(100)) ?? '', /^label key 'x{70}…': the name is longer than 63/);
      for (const good of ['', 'web', 'v1.2.3', 'a_b-c', 'X']) assert.equal(validateLabelValue(good), null, good);
      assert.match(validateLabelValue('_web') ?? '', /label value '_web' must be empty or/);
      assert.match(validateLabelValue('a b') ?? '', /label value 'a b'/);
      assert.match(validateLabelValue('v'.repeat(64)) ?? '', /longer than 63 characters/);
    });

    it('validates a mapping of labels, naming the first bad key or value', function () {
      assert.equal(validateLabels({ role: 'web', 'example.com/region': 'eu', canary: '' }), null);
      assert.match(validateLabels({ role: 'web', 'bad key': 'x' }) ?? '', /'bad key'/);
      assert.match(validateLabels({ role: 'web!' }) ?? '', /label value 'web!'/);
      assert.match(validateLabels({ port: 8080 }) ?? '', /label 'port': the value must be a string/);
    });

    it('parses k=v lists, with whitespace and empty values, and repeated flags', function () {
      assert.deepEqual(parseLabelList('role=web,region=eu'), { role: 'web', region: 'eu' });
      assert.deepEqual(parseLabelList(' role = web , example.com/tier=db , canary= '), { role: 'web', 'example.com/tier': 'db', canary: '' });
      assert.deepEqual(parseLabelList(''), {});
      assert.deepEqual(parseLabelList('  '), {});
      assert.deepEqual(parseLabelList(['role=web', 'region=eu,zone=a']), { role: 'web', region: 'eu', zone: 'a' });
      assert.deepEqual(parseLabelList([]), {});
    });

    it('refuses bad lists with a 400 naming the label', function () {
      const bad: [string | string[], RegExp][] = [
        ['role', /label 'role' has no '='/],
        ['role=web,,region=eu', /an entry is empty/],
        ['role=web,', /an entry is empty/],
        ['=web', /a label key must not be empty/],
        ['ro le=web', /label key 'ro le'/],
        ['role=w=b', /label value 'w=b'/],
        [`role=${'v'.repeat(64)}`, /longer than 63/],
        ['role=web,region=eu,role=db', /label key 'role' is given twice/],
        [['role=web', 'role=db'], /label key 'role' is given twice/],
      ];
      for (const [text, pattern] of bad) {
        assert.throws(() => parseLabelList(text), (err: unknown) => {
          assert.ok(err instanceof InvalidRequestError);
          assert.equal(err.status, 400);
          assert.match(err.message, pattern);
          return true;
        }, JSON.stringify(text));
      }
    });
  });
});
