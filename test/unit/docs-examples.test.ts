import assert from 'node:assert/strict';
import { checkedExamples, jsonDifference, outputDifference } from '../support/docs-examples';

describe('checked docs examples', function () {
  const md = [
    'text',
    '<!-- checked -->',
    '```sh',
    '$ curl -X POST -d@x.json \\',
    '    http://localhost:8888/worker',
    '{"id": 1}',
    '$ echo a',
    'a',
    'b',
    '```',
    '```sh',
    '$ not checked',
    '```',
  ].join('\n');

  it('finds the commands of a marked block, joins continued lines, and takes what follows each as its output', function () {
    const [ex, ...rest] = checkedExamples(md, 'X.md');
    assert.equal(rest.length, 0);
    assert.equal(ex.line, 2);
    assert.deepEqual(ex.commands, [
      { line: 4, command: 'curl -X POST -d@x.json \\\n    http://localhost:8888/worker', expected: '{"id": 1}' },
      { line: 7, command: 'echo a', expected: 'a\nb' },
    ]);
  });

  it('refuses a marker without a block, a block left open, and a block not starting with a command', function () {
    assert.throws(() => checkedExamples('<!-- checked -->\ntext', 'X.md'), /X\.md:1: a checked marker must be followed by a fenced block/);
    assert.throws(() => checkedExamples('<!-- checked -->\n```\n$ a', 'X.md'), /not closed/);
    assert.throws(() => checkedExamples('<!-- checked -->\n```\noutput\n```', 'X.md'), /X\.md:3: a checked block starts with a '\$ ' command line/);
  });

  it('compares JSON by every key and value, any ISO time matching any other', function () {
    assert.equal(jsonDifference({ a: 1, t: '2026-11-24T16:48:41.142Z', l: [{ s: 'DONE' }] }, { a: 1, t: '2026-12-06T07:00:00.000Z', l: [{ s: 'DONE' }] }), null);
    assert.match(String(jsonDifference({ a: 1 }, { a: 2 })), /\$\.a: expected 1, got 2/);
    assert.match(String(jsonDifference({ a: 1 }, { a: 1, b: 2 })), /the output has b, which the docs do not show/);
    assert.match(String(jsonDifference({ a: 1, c: 3 }, { a: 1 })), /the docs show c, which the output lacks/);
    assert.match(String(jsonDifference({ l: [1, 2] }, { l: [1] })), /\$\.l: expected 2 items, got 1/);
    assert.match(String(jsonDifference({ t: '2026-11-24T16:48:41.142Z' }, { t: null })), /\$\.t: expected a time, got null/);
    assert.match(String(jsonDifference({ p: null }, { p: {} })), /\$\.p: expected null, got \{\}/);
  });

  it('compares text line by line, a time or a table\'s padding matching any other', function () {
    assert.equal(outputDifference('A  B\nat 2026-11-24T16:48:41Z ok', 'A     B\nat 2026-12-06T07:00:00.123Z ok'), null);
    assert.match(String(outputDifference('a\nb', 'a')), /expected 2 lines, got 1/);
    assert.match(String(outputDifference('state DONE', 'state SENT')), /line 1: expected 'state DONE', got 'state SENT'/);
    assert.equal(outputDifference('(1+1)*2 [x]', '(1+1)*2 [x]'), null);
    assert.match(String(outputDifference('{"a": 1}', 'oops')), /expected JSON, got: oops/);
    assert.equal(outputDifference('{"a": 1}\n{"b": 2}', '{"a":1}\n{"b":2}'), null);
  });
});
