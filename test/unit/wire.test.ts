import assert from 'node:assert/strict';
import { InvalidMessageError } from '../../manager/errors';
import { decodeMessage, encodeMessage, TaskMessage } from '../../manager/wire';

describe('wire format', function () {
  const msg: TaskMessage = { id: 7, identifier: 'abc', type: 'worker', payload: { foo: 'bar' }, endpoints: ['console1'], start_time: '2026-11-22T10:00:00.000Z' };

  it('round-trips a task message as JSON', function () {
    assert.deepEqual(decodeMessage(encodeMessage(msg), 'application/json'), msg);
    assert.deepEqual(JSON.parse(encodeMessage(msg).toString()), msg);
  });

  it('rejects what is not a task', function () {
    const bad: [Buffer, string | undefined][] = [
      [Buffer.from('not json'), 'application/json'],
      [Buffer.from('[1]'), 'application/json'],
      [Buffer.from(JSON.stringify({ ...msg, id: 'x' })), 'application/json'],
      [Buffer.from(JSON.stringify({ ...msg, endpoints: 'console1' })), 'application/json'],
      [Buffer.from(JSON.stringify({ ...msg, type: '../x' })), 'application/json'],
      [Buffer.from(JSON.stringify({ ...msg, start_time: 'yesterday' })), 'application/json'],
      // A Python pickle, as the original sent.
      [Buffer.from('80027d7100285502696471014b01752e', 'hex'), 'application/python-pickle'],
      [Buffer.from('80027d7100285502696471014b01752e', 'hex'), undefined],
    ];
    for (const [body, type] of bad) assert.throws(() => decodeMessage(body, type), InvalidMessageError);
  });
});
