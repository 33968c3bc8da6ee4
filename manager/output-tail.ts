/**
 * The end of one output stream of a command: every byte is counted, but only enough of the last ones are
 * kept to give the last `maxChars` characters, so a command writing gigabytes costs a few pages of memory.
 */
export class OutputTail {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private total = 0;
  /** Bytes that certainly hold `maxChars` characters of UTF-8, and the start of the first of them. */
  private readonly capacity: number;

  constructor(private readonly maxChars: number) {
    this.capacity = maxChars * 4 + 3;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.capacity === 0) return;
    this.chunks.push(chunk);
    this.kept += chunk.length;
    while (this.kept - this.chunks[0].length >= this.capacity) this.kept -= (this.chunks.shift() as Buffer).length;
    if (this.kept > this.capacity) {
      // A copy, so that the rest of a large chunk can be freed.
      this.chunks[0] = Buffer.from(this.chunks[0].subarray(this.kept - this.capacity));
      this.kept = this.capacity;
    }
  }

  /** Every byte written, kept or not. */
  get bytes(): number {
    return this.total;
  }

  /**
   * The last `maxChars` characters, decoded as UTF-8 with U+FFFD for what is not (binary output), and
   * whether that is less than everything written.
   */
  text(): { text: string; truncated: boolean } {
    let bytes = Buffer.concat(this.chunks, this.kept);
    const cut = this.kept < this.total;
    // Cut inside a character: its continuation bytes would decode as U+FFFD that the output never had.
    if (cut) {
      let skip = 0;
      while (skip < 3 && skip < bytes.length && (bytes[skip] & 0xc0) === 0x80) skip++;
      bytes = bytes.subarray(skip);
    }
    let text = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(bytes);
    let truncated = cut;
    if (text.length > this.maxChars) {
      text = text.slice(text.length - this.maxChars);
      // Half of a surrogate pair left at the start is no character.
      if (/^[\udc00-\udfff]/.test(text)) text = text.slice(1);
      truncated = true;
    }
    return { text, truncated };
  }
}
