import assert from 'node:assert/strict';
import { InvalidMessageError } from '../../lib/errors';
import { bccChunks } from '../../protocol/server-transport';
import { Topology } from '../../protocol/topology';
import {
  decodeEvents, decodeServerRequest, decodeStateReply, decodeTaskMessage, encode, MAX_RESPONSE_PAYLOAD_BYTES, TaskMessage,
} from '../../protocol/wire';

const JSON_TYPE = 'application/json';

describe('wire format', function () {
  const msg: TaskMessage = { id: 7, identifier: 'abc', type: 'worker', payload: { foo: 'bar' }, endpoints: ['console1'], start_time: '2026-11-22T10:00:00.000Z' };
  const result = {
    kind: 'result', task_id: 7, endpoint: 'console1', attempt: 1, start_time: '2026-11-22T10:00:00.000Z',
    end_time: '2026-11-22T10:00:01.000Z', errnr: 0, errmsg: null, payload: { ok: true },
  };

  it('round-trips a task message as JSON, ignoring unknown fields', function () {
    assert.deepEqual(decodeTaskMessage(encode(msg), JSON_TYPE), { ...msg, round: 0 });
    assert.deepEqual(decodeTaskMessage(encode({ ...msg, round: 3 }), JSON_TYPE), { ...msg, round: 3 });
    assert.deepEqual(decodeTaskMessage(encode({ ...msg, extra: 1 }), undefined), { ...msg, extra: 1, round: 0 });
    assert.equal(decodeTaskMessage(encode({ ...msg, payload: undefined }), JSON_TYPE).payload, null);
  });

  it('rejects what is not a task', function () {
    const bad: [Buffer, string | undefined][] = [
      [Buffer.from('not json'), JSON_TYPE],
      [Buffer.from('[1]'), JSON_TYPE],
      [encode({ ...msg, id: 'x' }), JSON_TYPE],
      [encode({ ...msg, id: 0 }), JSON_TYPE],
      [encode({ ...msg, endpoints: 'console1' }), JSON_TYPE],
      [encode({ ...msg, endpoints: [7] }), JSON_TYPE],
      [encode({ ...msg, type: '../x' }), JSON_TYPE],
      [encode({ ...msg, start_time: 'yesterday' }), JSON_TYPE],
      // A Python pickle, as the original sent.
      [Buffer.from('80027d7100285502696471014b01752e', 'hex'), 'application/python-pickle'],
      [Buffer.from('80027d7100285502696471014b01752e', 'hex'), undefined],
    ];
    for (const [body, type] of bad) assert.throws(() => decodeTaskMessage(body, type), InvalidMessageError, body.toString());
  });

  it('reads one event or a list of events of one endpoint', function () {
    const receipt = { kind: 'receipt', task_id: 7, endpoint: 'console1', attempt: 1, start_time: result.start_time };
    const heartbeat = { kind: 'heartbeat', endpoint: 'console1', task_types: ['worker'], time: result.end_time };
    assert.deepEqual(decodeEvents(encode(result), JSON_TYPE), [{ ...result, round: 0 }]);
    assert.deepEqual(decodeEvents(encode([receipt, result, heartbeat]), JSON_TYPE), [{ ...receipt, round: 0 }, { ...result, round: 0 }, heartbeat]);
    assert.equal((decodeEvents(encode({ ...result, payload: undefined }), JSON_TYPE)[0] as { payload: unknown }).payload, null);
  });

  it('reads labels and facts in register and heartbeat events, and refuses bad or oversized ones naming the key', function () {
    const base = { kind: 'register', endpoint: 'web1', task_types: ['worker'], time: result.end_time };
    const labelled = { ...base, labels: { role: 'web', 'example.com/region': 'eu', empty: '' }, facts: { hostname: 'web1.example', os: 'linux', arch: 'x64', version: '0.1.0', task_types: ['worker'], handler_kinds: ['module'], later: 1 } };
    assert.deepEqual(decodeEvents(encode(labelled), JSON_TYPE), [labelled]);
    // Both optional: an endpoint written before them still registers.
    assert.deepEqual(decodeEvents(encode(base), JSON_TYPE), [base]);
    const refused: [unknown, RegExp][] = [
      [{ ...base, labels: { 'bad key': 'x' } }, /\/labels label key 'bad key'/],
      [{ ...base, labels: { role: '-web' } }, /\/labels label value '-web'/],
      [{ ...base, labels: { role: 'x'.repeat(64) } }, /labels/],
      [{ ...base, labels: { role: 3 } }, /labels/],
      [{ ...base, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, /labels/],
      [{ ...base, facts: { hostname: 'h'.repeat(300) } }, /facts/],
      [{ ...base, facts: 'linux' }, /facts/],
    ];
    for (const [value, message] of refused) {
      assert.throws(() => decodeEvents(encode(value), JSON_TYPE), (err: Error) => err instanceof InvalidMessageError && message.test(err.message), JSON.stringify(value).slice(0, 80));
    }
  });

  it('rejects malformed events with a message naming the field', function () {
    const cases: [unknown, RegExp][] = [
      [{ ...result, kind: 'done' }, /kind must be/],
      [{ ...result, task_id: -1 }, /task_id/],
      [{ ...result, errnr: 2 ** 40 }, /errnr/],
      [{ ...result, errnr: 1.5 }, /errnr/],
      [{ ...result, endpoint: 'a b' }, /endpoint/],
      [{ ...result, attempt: 0 }, /attempt/],
      [{ ...result, start_time: '2026-13-45T10:00:00Z' }, /start_time is not a time/],
      [{ ...result, end_time: '1900-01-01T00:00:00Z' }, /end_time is not a time/],
      [{ ...result, errmsg: 'x'.repeat(20_000) }, /errmsg/],
      [{ ...result, payload: 'x'.repeat(MAX_RESPONSE_PAYLOAD_BYTES) }, /payload is over/],
      [{ kind: 'heartbeat', endpoint: 'e', task_types: [], time: result.end_time }, /task_types/],
      [[], /1 to 1000 events/],
      [[result, { ...result, endpoint: 'console2' }], /one endpoint/],
    ];
    for (const [value, message] of cases) {
      assert.throws(() => decodeEvents(encode(value), JSON_TYPE), (err: Error) => err instanceof InvalidMessageError && message.test(err.message), JSON.stringify(value).slice(0, 80));
    }
  });

  it('reads state requests and replies', function () {
    const req = { kind: 'state', task_id: 7, endpoint: 'console1', redelivered: true, resent: false, max_attempts: 5 };
    assert.deepEqual(decodeServerRequest(encode(req), JSON_TYPE), { ...req, round: 0 });
    assert.deepEqual(decodeServerRequest(encode({ ...req, round: 2 }), JSON_TYPE), { ...req, round: 2 });
    assert.throws(() => decodeServerRequest(encode({ ...req, max_attempts: 0 }), JSON_TYPE), InvalidMessageError);
    assert.deepEqual(decodeServerRequest(encode({ kind: 'cancelled', endpoint: 'console1' }), JSON_TYPE), { kind: 'cancelled', endpoint: 'console1' });
    assert.throws(() => decodeServerRequest(encode({ kind: 'cancelled' }), JSON_TYPE), /endpoint/);
    assert.deepEqual(decodeStateReply(encode({ task_id: 7, endpoint: 'console1', action: 'run', attempt: 2 })),
      { task_id: 7, endpoint: 'console1', action: 'run', attempt: 2 });
    assert.throws(() => decodeStateReply(encode({ task_id: 7, endpoint: 'console1', action: 'maybe' })), InvalidMessageError);
  });

  it('splits a targeted send so that each BCC header fits a frame', function () {
    const queues = Array.from({ length: 3000 }, (_v, i) => `tasker.worker.${'e'.repeat(40)}${i}`);
    const chunks = bccChunks(queues);
    assert.ok(chunks.length > 1);
    assert.deepEqual(chunks.flat(), queues);
    for (const c of chunks) assert.ok(c.reduce((n, q) => n + q.length + 8, 0) <= 32 * 1024);
    assert.deepEqual(bccChunks(['a']), [['a']]);
  });

  it('gives an endpoint user permissions on its own queues and the responses exchange only', function () {
    const p = new Topology('tasker', 'classic').endpointPermissions('console1');
    const matches = (re: string, name: string): boolean => new RegExp(re).test(name);
    assert.ok(matches(p.read, 'tasker.worker.console1') && matches(p.read, 'tasker.worker'));
    assert.ok(!matches(p.read, 'tasker.worker.console2') && !matches(p.read, 'tasker.responses') && !matches(p.read, 'tasker.state'));
    assert.ok(!matches(p.read, 'tasker.worker.console1x'));
    assert.ok(matches(p.write, 'tasker.responses') && matches(p.write, 'tasker.worker.console1'));
    assert.ok(!matches(p.write, 'tasker.worker') && !matches(p.write, '') && !matches(p.write, 'tasker.worker.console2'));
    // Its queues dead-letter by policy: nothing of its own needs the dead-letter exchange.
    assert.ok(!matches(p.write, 'tasker.dead-letter') && !matches(p.read, 'tasker.dead-letter') && !matches(p.configure, 'tasker.dead-letter'));
    assert.ok(matches(p.configure, 'tasker.backup.console1') && !matches(p.configure, 'tasker.worker'));
    // An endpoint name's dots are literal.
    const dotted = new Topology('tasker', 'classic').endpointPermissions('a.b');
    assert.ok(!matches(dotted.read, 'tasker.worker.aXb'));
  });

  it('dead-letters by a policy on the queues that refuse messages, and bounds the dead-letter queue by another that never overlaps it', function () {
    for (const prefix of ['tasker', 'a.b']) {
      const t = new Topology(prefix, 'quorum');
      const dlx = t.deadLetterExchangePolicy;
      const bounds = t.deadLetterBoundsPolicy;
      assert.deepEqual(dlx.definition, { 'dead-letter-exchange': `${prefix}.dead-letter` });
      const refusing = [t.endpointQueue('worker', 'console1').name, t.endpointQueue('worker', 'a.b-c_d').name, t.eventsQueue.name, t.stateQueue.name];
      for (const name of refusing) {
        assert.ok(new RegExp(dlx.pattern).test(name), `${dlx.pattern} matches ${name}`);
        assert.ok(!new RegExp(bounds.pattern).test(name), `${bounds.pattern} does not match ${name}`);
      }
      assert.ok(new RegExp(bounds.pattern).test(t.deadLetter));
      // The dead-letter queue must not dead-letter into itself; exclusive queues, exchanges' lookalikes and other prefixes are not tasker's.
      for (const name of [t.deadLetter, 'amq.gen-abc', `${prefix}.worker`, `${prefix}x.worker.console1`, `other.${prefix}.worker.console1`, `${prefix}.Worker.console1`]) {
        assert.ok(!new RegExp(dlx.pattern).test(name), `${dlx.pattern} does not match ${name}`);
      }
      // No queue argument names the dead-letter exchange any more; the legacy arguments are those an older version created queues with.
      for (const q of [t.endpointQueue('worker', 'console1'), t.eventsQueue, t.stateQueue]) {
        assert.deepEqual(q.arguments, { 'x-queue-type': 'quorum' });
        assert.deepEqual(q.legacyArguments, { 'x-dead-letter-exchange': `${prefix}.dead-letter`, 'x-queue-type': 'quorum' });
      }
    }
  });
});
