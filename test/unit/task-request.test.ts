import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { InvalidRequestError, SelectorSyntaxError } from '../../lib/errors';
import { bodyChecker } from '../../api/operation';
import { TaskRequestBody } from '../../api/schemas';
import { canonicalJson, MAX_PAYLOAD_DEPTH, requestHash, toTaskRequest } from '../../api/task-request';

/** What POST /<task_type> does with a parsed body: its schema, then what the schema cannot say. */
const checkBody = bodyChecker(TaskRequestBody);
const parseTaskRequest = (body: unknown) => toTaskRequest(checkBody(body));

describe('task requests', function () {
  it('accepts the seed body', function () {
    const req = parseTaskRequest({ identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66', payload: { foo: 'bar' }, endpoints: ['console1', 'console2'] });
    assert.deepEqual(req, { identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66', payload: { foo: 'bar' }, endpoints: ['console1', 'console2'], selector: null, rollout: null, timeout: null, notify: null, allowUnknownEndpoints: false });
  });

  it('takes a selector instead of endpoints, refuses both and a malformed one, and hashes the selector rather than what it resolves to', function () {
    const req = parseTaskRequest({ identifier: 'a', selector: 'role=web, region in (eu,us)' });
    assert.equal(req.endpoints, null);
    assert.equal(req.selector?.text, 'role=web, region in (eu,us)');
    assert.throws(() => parseTaskRequest({ identifier: 'a', selector: 'role=web', endpoints: ['x'] }), /either endpoints or selector, not both/);
    // An empty list is no list: the selector alone counts.
    assert.equal(parseTaskRequest({ identifier: 'a', selector: 'role=web', endpoints: [] }).selector?.text, 'role=web');
    assert.throws(() => parseTaskRequest({ identifier: 'a', selector: '' }), /selector must be a label selector/);
    assert.throws(() => parseTaskRequest({ identifier: 'a', selector: 'role=web,,x' }), (err: Error) => err instanceof SelectorSyntaxError && err.position === 9 && err.code === 'bad_selector');
    // The same selector written otherwise is the same request; another selector, or names, another.
    assert.equal(requestHash(req), requestHash(parseTaskRequest({ identifier: 'a', selector: 'role==web,region in (eu, us)' })));
    assert.notEqual(requestHash(req), requestHash(parseTaskRequest({ identifier: 'a', selector: 'role=web' })));
    assert.notEqual(requestHash(parseTaskRequest({ identifier: 'a', selector: 'role=web' })), requestHash(parseTaskRequest({ identifier: 'a' })));
    assert.equal(requestHash({ ...req, endpoints: ['web1'] }), requestHash(req));
  });

  it('takes allow_unknown_endpoints as a boolean only, outside the request\'s identity', function () {
    assert.equal(parseTaskRequest({ identifier: 'a', endpoints: ['x'], allow_unknown_endpoints: true }).allowUnknownEndpoints, true);
    assert.throws(() => parseTaskRequest({ identifier: 'a', allow_unknown_endpoints: 'yes' }), /allow_unknown_endpoints must be true or false/);
    const with_ = parseTaskRequest({ identifier: 'a', endpoints: ['x'], allow_unknown_endpoints: true });
    const without = parseTaskRequest({ identifier: 'a', endpoints: ['x'] });
    assert.equal(requestHash(with_), requestHash(without));
  });

  it('takes a timeout of 1 to 2592000 seconds, which a repeat must ask for alike', function () {
    assert.equal(parseTaskRequest({ identifier: 'a', timeout: 1 }).timeout, 1);
    assert.equal(parseTaskRequest({ identifier: 'a', timeout: 2_592_000 }).timeout, 2_592_000);
    const base = { payload: null, endpoints: null };
    assert.equal(requestHash({ ...base, timeout: null }), requestHash(base), 'no timeout: the hash of tasks stored before timeouts');
    assert.notEqual(requestHash({ ...base, timeout: 5 }), requestHash(base));
  });

  it('treats missing, null and empty endpoints as none listed', function () {
    for (const endpoints of [undefined, null, []]) assert.equal(parseTaskRequest({ identifier: 'a', endpoints }).endpoints, null);
  });

  it('rejects bad bodies with InvalidRequestError', function () {
    for (const body of [null, [], 'x', {}, { identifier: '' }, { identifier: 'a b' }, { identifier: 'a', endpoints: {} },
      { identifier: 'a', endpoints: [''] }, { identifier: 'a', extra: 1 }]) {
      assert.throws(() => parseTaskRequest(body), InvalidRequestError, JSON.stringify(body));
    }
  });

  it('names the field and the rule in its message', function () {
    const cases: [unknown, string][] = [
      [[], 'body must be a JSON object'],
      [{}, 'identifier is required'],
      [{ identifier: 'a/b' }, 'identifier must be 1-64 characters of A-Z a-z 0-9 . _ : -'],
      [{ identifier: 'a', endpoints: 'console1' }, 'endpoints must be a list'],
      [{ identifier: 'a', endpoints: ['ok', '../etc'] }, 'endpoints[1] must be an endpoint name'],
      [{ identifier: 'a', endpoints: ['a', 'a'] }, 'endpoints lists "a" twice'],
      [{ identifier: 'a', priority: 1 }, "unknown field 'priority'; expected identifier, payload, endpoints, selector, rollout, timeout"],
      [{ identifier: 'a', timeout: 0 }, 'timeout must be a whole number of seconds from 1 to 2592000'],
      [{ identifier: 'a', timeout: 2_592_001 }, 'timeout must be a whole number of seconds from 1 to 2592000'],
      [{ identifier: 'a', timeout: 1.5 }, 'timeout must be a whole number of seconds from 1 to 2592000'],
      [{ identifier: 'a', rollout: { batch_size: 0 } }, 'rollout.batch_size must be an integer of at least 1 or a percentage from 1% to 100%'],
      [{ identifier: 'a', rollout: { batch_size: '0%' } }, 'rollout.batch_size must be an integer of at least 1 or a percentage from 1% to 100%'],
      [{ identifier: 'a', rollout: { batch_size: '101%' } }, 'rollout.batch_size must be an integer of at least 1 or a percentage from 1% to 100%'],
      [{ identifier: 'a', rollout: { batch_size: 2, max_errors: -1 } }, 'rollout.max_errors must be an integer of at least 0 or a percentage from 0% to 100%'],
      [{ identifier: 'a', rollout: { batch_size: 2, max_errors: '5.5%' } }, 'rollout.max_errors must be an integer of at least 0 or a percentage from 0% to 100%'],
      [{ identifier: 'a', rollout: { max_errors: 1 } }, 'rollout.batch_size is required'],
    ];
    for (const [body, message] of cases) {
      assert.throws(() => parseTaskRequest(body), (err: Error) => err.message.startsWith(message), `${JSON.stringify(body)} → ${message}`);
    }
  });

  it('refuses payloads nested deeper than the limit, and takes one at the limit', function () {
    const nest = (levels: number): unknown => {
      let v: unknown = 1;
      for (let i = 0; i < levels; i++) v = i % 2 ? [v] : { k: v };
      return v;
    };
    assert.doesNotThrow(() => requestHash(parseTaskRequest({ identifier: 'a', payload: nest(MAX_PAYLOAD_DEPTH) })));
    assert.throws(() => parseTaskRequest({ identifier: 'a', payload: nest(MAX_PAYLOAD_DEPTH + 1) }), /nested deeper/);
    // Deep enough to overflow the stack of anything recursive.
    assert.throws(() => parseTaskRequest({ identifier: 'a', payload: nest(200_000) }), /nested deeper/);
  });

  it('hashes equal requests equally whatever the key order, and different ones differently', function () {
    const a = requestHash(parseTaskRequest({ identifier: 'a', payload: { x: 1, y: { p: 1, q: 2 } } }));
    const b = requestHash(parseTaskRequest({ payload: { y: { q: 2, p: 1 }, x: 1 }, identifier: 'a' }));
    const c = requestHash(parseTaskRequest({ identifier: 'a', payload: { x: 2, y: { p: 1, q: 2 } } }));
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null }), '{"a":null,"b":[1,{"c":2,"d":1}]}');
  });

  it('takes a rollout as numbers or percentages, and hashes it only when there is one', function () {
    const plain = parseTaskRequest({ identifier: 'a', payload: { x: 1 }, endpoints: ['e1'] });
    assert.equal(requestHash(plain), createHash('sha256').update('{"endpoints":["e1"],"payload":{"x":1}}').digest('hex'),
      'tasks stored before rollouts keep their hash');
    const rolled = parseTaskRequest({ identifier: 'a', payload: { x: 1 }, endpoints: ['e1'], rollout: { batch_size: '10%', max_errors: 3 } });
    assert.deepEqual(rolled.rollout, { batch_size: '10%', max_errors: 3 });
    const other = parseTaskRequest({ identifier: 'a', payload: { x: 1 }, endpoints: ['e1'], rollout: { batch_size: '10%', max_errors: 4 } });
    assert.notEqual(requestHash(rolled), requestHash(plain));
    assert.notEqual(requestHash(rolled), requestHash(other), 'a repeat with another rollout is a conflict');
    for (const batch_size of [1, 1000, '1%', '100%', '55%']) assert.doesNotThrow(() => parseTaskRequest({ identifier: 'a', rollout: { batch_size } }));
    for (const max_errors of [0, '0%', '100%']) assert.doesNotThrow(() => parseTaskRequest({ identifier: 'a', rollout: { batch_size: 1, max_errors } }));
  });

  it('keeps a notify URL and hashes it only when given, so that earlier tasks\' hashes stay', function () {
    const plain = parseTaskRequest({ identifier: 'a', payload: { x: 1 } });
    const notified = parseTaskRequest({ identifier: 'a', payload: { x: 1 }, notify: 'https://ci.example.com/hook' });
    assert.equal(notified.notify, 'https://ci.example.com/hook');
    assert.equal(plain.notify, null);
    assert.equal(requestHash(plain), requestHash({ payload: { x: 1 }, endpoints: null }), 'no notify: the hash of before');
    assert.notEqual(requestHash(notified), requestHash(plain), 'a repeat without it is a conflict');
    assert.notEqual(requestHash(notified), requestHash({ ...notified, notify: 'https://ci.example.com/other' }), 'and one with another URL');
  });
});
