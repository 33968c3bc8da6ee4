import assert from 'node:assert/strict';
import mysql from 'mysql2';
import { literalBytes, taskRowBytes } from '../../api/storage/insert-bound';
import type { NewTask } from '../../api/storage/task-store';

describe('the bytes a task adds to its insert batch', function () {
  it('counts a value exactly as the driver writes it into the statement, escapes and multi-byte characters included', function () {
    const samples = ['', 'plain', '{"a":"b\\"c"}', 'it\'s', 'back\\slash', '\0\b\t\n\r\x1a', 'é€😀', '"'.repeat(1000), JSON.stringify({ q: '"\'\\' })];
    for (const text of samples) assert.equal(literalBytes(text), Buffer.byteLength(mysql.escape(text)), JSON.stringify(text));
    assert.equal(literalBytes(null), Buffer.byteLength(mysql.escape(null)));
  });

  it('grows with the payload as stored, and with the endpoint lists', function () {
    const task: NewTask = {
      type: 'worker', identifier: 'x', payload: null, endpoints: ['a'], expected: ['a'], requestHash: 'h', timeout: 3600, actor: null, rollout: null,
    };
    const quotes = JSON.stringify({ blob: '"'.repeat(1000) });
    assert.equal(taskRowBytes(task, quotes) - taskRowBytes(task, null), literalBytes(quotes) - literalBytes(null));
    // Each quote: escaped once in JSON (\"), and both of those characters again in SQL.
    assert.ok(literalBytes(quotes) > 4000);
    const wide = { ...task, endpoints: null, expected: Array.from({ length: 1000 }, (_x, i) => `endpoint-${i}`) };
    assert.ok(taskRowBytes(wide, null) > taskRowBytes(task, null) + 1000 * 'endpoint-0'.length);
  });
});
