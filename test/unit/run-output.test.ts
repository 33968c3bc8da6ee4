import assert from 'node:assert/strict';
import { InvalidMessageError } from '../../lib/errors';
import { LineSplitter, MAX_OUTPUT_EVENT_BYTES, RunOutput } from '../../manager/run-output';
import { decodeEvents, MAX_OUTPUT_LINE_CHARS, OutputEvent } from '../../protocol/wire';

const BASE = { task_id: 7, endpoint: 'ep1', attempt: 1, round: 0 };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('a run\'s live output (manager side)', function () {
  it('numbers lines in order, sends at most one event per flush interval while running, and the rest on close', async function () {
    const sent: OutputEvent[] = [];
    const out = new RunOutput(BASE, { maxLines: 1000, maxBytes: 1e6, flushMs: 50, batchLines: 3 }, async (e) => { sent.push(e); });
    for (let i = 1; i <= 10; i++) out.line('stdout', `l${i}`);
    await sleep(20);
    assert.equal(sent.length, 0, 'nothing before the first interval');
    await sleep(60);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0].lines.map((l) => l.text), ['l1', 'l2', 'l3']);
    await out.close();
    const lines = sent.flatMap((e) => e.lines.map((l, i) => [e.seq + i, l.text]));
    assert.deepEqual(lines, Array.from({ length: 10 }, (_v, i) => [i + 1, `l${i + 1}`]));
    assert.ok(sent.every((e) => e.kind === 'output' && e.task_id === 7 && e.endpoint === 'ep1' && e.attempt === 1));
  });

  it('past max lines or bytes counts what it drops and ends with one line saying how much', async function () {
    const sent: OutputEvent[] = [];
    const out = new RunOutput(BASE, { maxLines: 5, maxBytes: 1e6, flushMs: 1000, batchLines: 100 }, async (e) => { sent.push(e); });
    for (let i = 1; i <= 8; i++) out.line('stderr', 'abc');
    await out.close();
    const lines = sent.flatMap((e) => e.lines);
    assert.equal(lines.length, 6);
    assert.deepEqual(lines.slice(0, 5).map((l) => l.stream), ['stderr', 'stderr', 'stderr', 'stderr', 'stderr']);
    assert.equal(lines[5].stream, 'log');
    assert.match(lines[5].text, /^\[tasker\] 3 more lines \(9 bytes\) not sent/);
    const bytes = new RunOutput(BASE, { maxLines: 100, maxBytes: 10, flushMs: 1000, batchLines: 100 }, async (e) => { sent.push(e); });
    sent.length = 0;
    bytes.line('stdout', '12345');
    bytes.line('stdout', '123456');
    bytes.line('stdout', '1234');
    await bytes.close();
    assert.deepEqual(sent.flatMap((e) => e.lines).map((l) => l.text.slice(0, 20)), ['12345', '1234', '[tasker] 1 more line']);
  });

  it('keeps each event within MAX_OUTPUT_EVENT_BYTES as JSON, however the lines escape', async function () {
    const sent: OutputEvent[] = [];
    const out = new RunOutput(BASE, { maxLines: 10_000, maxBytes: 1e9, flushMs: 1000, batchLines: 1000 }, async (e) => { sent.push(e); });
    // Control characters: six bytes each in JSON.
    for (let i = 0; i < 300; i++) out.line('stdout', '\u0001'.repeat(MAX_OUTPUT_LINE_CHARS));
    await out.close();
    assert.ok(sent.length > 1);
    for (const e of sent) assert.ok(Buffer.byteLength(JSON.stringify(e)) <= MAX_OUTPUT_EVENT_BYTES + 4096, `${Buffer.byteLength(JSON.stringify(e))} bytes`);
    assert.equal(sent.reduce((n, e) => n + e.lines.length, 0), 300);
    assert.deepEqual(sent.map((e) => e.seq), sent.map((_e, i) => 1 + sent.slice(0, i).reduce((n, p) => n + p.lines.length, 0)));
  });

  it('sends nothing with max lines 0', async function () {
    const sent: OutputEvent[] = [];
    const none = new RunOutput(BASE, { maxLines: 0, maxBytes: 1e6, flushMs: 10, batchLines: 10 }, async (e) => { sent.push(e); });
    none.line('stdout', 'x');
    await none.close();
    assert.equal(sent.length, 0);
  });

  it('splits bytes into lines: CRLF, a character split across chunks, a line without newline at the end, an overlong line cut', function () {
    const lines: string[] = [];
    const s = new LineSplitter((t) => lines.push(t));
    const e = Buffer.from('é');
    s.push(Buffer.concat([Buffer.from('a\r\nb'), e.subarray(0, 1)]));
    s.push(Buffer.concat([e.subarray(1), Buffer.from('\n\nlast')]));
    s.push(Buffer.from('x'.repeat(MAX_OUTPUT_LINE_CHARS + 10)));
    s.end();
    assert.deepEqual(lines, ['a', 'bé', '', `last${'x'.repeat(MAX_OUTPUT_LINE_CHARS - 4)}`, 'x'.repeat(14)]);
  });
});

describe('output events on the wire', function () {
  const t = '2026-12-06T03:00:00.000Z';
  const good = { kind: 'output', task_id: 1, endpoint: 'ep1', attempt: 1, seq: 1, lines: [{ stream: 'stdout', text: 'hi', t }] };
  const decode = (v: unknown): unknown => decodeEvents(Buffer.from(JSON.stringify(v)), 'application/json');

  it('are read, round 0 when absent', function () {
    assert.deepEqual(decode(good), [{ ...good, round: 0 }]);
  });

  it('are refused when not valid, naming the field', function () {
    const bad: [unknown, RegExp][] = [
      [{ ...good, lines: [] }, /lines/],
      [{ ...good, seq: 0 }, /seq/],
      [{ ...good, lines: [{ stream: 'stdin', text: 'x', t }] }, /stream/],
      [{ ...good, lines: [{ stream: 'stdout', text: 'x'.repeat(MAX_OUTPUT_LINE_CHARS + 1), t }] }, /text/],
      [{ ...good, lines: [{ stream: 'stdout', text: 'x', t: '2026-13-45T00:00:00Z' }] }, /lines\/0.*\/t/],
      [{ ...good, lines: Array.from({ length: 1001 }, () => ({ stream: 'stdout', text: 'x', t })) }, /lines/],
    ];
    for (const [value, field] of bad) {
      assert.throws(() => decode(value), (err: unknown) => err instanceof InvalidMessageError && field.test(err.message), JSON.stringify(value).slice(0, 100));
    }
  });
});
