import { StringDecoder } from 'node:string_decoder';
import { MAX_OUTPUT_LINE_CHARS, MAX_OUTPUT_LINES_PER_EVENT, OutputEvent, OutputLine, OutputStream } from '../protocol/wire';

/** The bounds of a run's live output (`manager.output_*`). */
export interface OutputLimits {
  /** Lines sent per run at most; 0: no output is sent. */
  maxLines: number;
  /** Bytes (UTF-8 of the lines' text) sent per run at most. */
  maxBytes: number;
  /** At most one output event per run in this many ms while it runs. */
  flushMs: number;
  /** Most lines in one event while the run runs (the rest waits for the next flush). */
  batchLines: number;
}

export const DEFAULT_OUTPUT_LIMITS: OutputLimits = { maxLines: 10_000, maxBytes: 1024 * 1024, flushMs: 250, batchLines: 500 };

type Send = (event: OutputEvent) => Promise<void>;

/**
 * Most bytes of lines (as JSON) in one output event: a line is at most 4,000 characters but up to six
 * bytes each escaped, and an event must stay far below the size of a response message the server reads.
 */
export const MAX_OUTPUT_EVENT_BYTES = 256 * 1024;

const lineBytes = (line: OutputLine): number => Buffer.byteLength(JSON.stringify(line.text)) + 64;

function cut(text: string): string {
  if (text.length <= MAX_OUTPUT_LINE_CHARS) return text;
  // Half of a surrogate pair left at the end is no character.
  const end = /[\ud800-\udbff]/.test(text[MAX_OUTPUT_LINE_CHARS - 2]) ? MAX_OUTPUT_LINE_CHARS - 2 : MAX_OUTPUT_LINE_CHARS - 1;
  return `${text.slice(0, end)}…`;
}

/**
 * The live output of one run: lines are numbered in the order written and sent as `output` events, at
 * most one event per `flushMs` while the run runs, so that a chatty run costs the broker and the server
 * side a bounded rate. Past `maxLines` or `maxBytes` lines are only counted; `close` sends what waits,
 * with one last line saying how much was dropped. Sending is best effort: output lost to a broker outage
 * never holds up the run's result.
 */
export class RunOutput {
  private waiting: OutputLine[] = [];
  private seq = 0;
  /** The seq of the first line in `waiting`. */
  private firstWaiting = 1;
  private bytes = 0;
  private droppedLines = 0;
  private droppedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> = Promise.resolve();
  private sending = false;
  private closed = false;

  constructor(
    private readonly base: { task_id: number; endpoint: string; attempt: number; round: number },
    private readonly limits: OutputLimits,
    private readonly send: Send,
  ) {}

  /** One line written by the run (without its newline). */
  line(stream: OutputStream, text: string): void {
    if (this.closed || this.limits.maxLines === 0) return;
    const size = Buffer.byteLength(text);
    if (this.seq >= this.limits.maxLines || this.bytes + size > this.limits.maxBytes) {
      this.droppedLines++;
      this.droppedBytes += size;
      return;
    }
    this.bytes += size;
    this.seq++;
    this.waiting.push({ stream, text: cut(text), t: new Date().toISOString() });
    this.timer ??= setTimeout(() => this.flush(), this.limits.flushMs);
  }

  /** Lines written, and lines dropped past the bounds. */
  get counts(): { lines: number; dropped: number } {
    return { lines: this.seq, dropped: this.droppedLines };
  }

  private flush(): void {
    this.timer = null;
    if (this.sending || this.closed || this.waiting.length === 0) return;
    const lines = this.take(this.limits.batchLines);
    const seq = this.firstWaiting;
    this.firstWaiting += lines.length;
    this.sending = true;
    this.inFlight = this.send({ kind: 'output', ...this.base, seq, lines }).finally(() => {
      this.sending = false;
      if (this.waiting.length > 0 && !this.closed) this.timer ??= setTimeout(() => this.flush(), this.limits.flushMs);
    });
  }

  /** The first waiting lines, at most `max` and MAX_OUTPUT_EVENT_BYTES of them (one at least). */
  private take(max: number): OutputLine[] {
    let n = 0;
    let bytes = 0;
    while (n < this.waiting.length && n < max) {
      bytes += lineBytes(this.waiting[n]);
      if (bytes > MAX_OUTPUT_EVENT_BYTES && n > 0) break;
      n++;
    }
    return this.waiting.splice(0, n);
  }

  /** Sends what waits (and the marker of what was dropped); resolves once it was sent or given up on. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
    if (this.droppedLines > 0) {
      this.seq++;
      this.waiting.push({
        stream: 'log', t: new Date().toISOString(),
        text: `[tasker] ${this.droppedLines} more lines (${this.droppedBytes} bytes) not sent: over manager.output_max_lines (${this.limits.maxLines}) or manager.output_max_bytes (${this.limits.maxBytes})`,
      });
    }
    while (this.waiting.length > 0) {
      const lines = this.take(MAX_OUTPUT_LINES_PER_EVENT);
      const seq = this.firstWaiting;
      this.firstWaiting += lines.length;
      await this.send({ kind: 'output', ...this.base, seq, lines });
    }
  }
}

/**
 * Splits a byte stream into lines: UTF-8 decoded (U+FFFD for what is not), split on `\n` (a `\r` before
 * it dropped), and a line longer than the bound cut rather than held: a program writing without newlines
 * costs a bounded buffer.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly onLine: (text: string) => void) {}

  push(chunk: Buffer): void {
    this.take(this.decoder.write(chunk));
  }

  end(): void {
    this.take(this.decoder.end());
    if (this.partial.length > 0) this.onLine(this.partial);
    this.partial = '';
  }

  private take(text: string): void {
    let rest = this.partial + text;
    let nl = rest.indexOf('\n');
    while (nl >= 0) {
      const line = rest.slice(0, nl);
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
      rest = rest.slice(nl + 1);
      nl = rest.indexOf('\n');
    }
    while (rest.length > MAX_OUTPUT_LINE_CHARS) {
      this.onLine(rest.slice(0, MAX_OUTPUT_LINE_CHARS));
      rest = rest.slice(MAX_OUTPUT_LINE_CHARS);
    }
    this.partial = rest;
  }
}
