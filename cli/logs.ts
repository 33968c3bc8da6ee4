import type { ApiClient } from './client';
import { CliError } from './exit-status';
import { readServerSentEvents } from './sse';

export interface OutputLine {
  attempt: number;
  seq: number;
  stream: 'stdout' | 'stderr' | 'log';
  text: string;
  time: string;
}

interface OutputPage {
  lines: OutputLine[];
  next_cursor: string;
  finished: boolean;
}

const PAGE = 5000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every stored line of a response's output, page by page. */
export async function readOutput(client: ApiClient, path: string[], onLine: (line: OutputLine) => void): Promise<void> {
  let cursor: string | undefined;
  for (;;) {
    const page = await client.json<OutputPage>('GET', path, { query: { limit: PAGE, cursor } });
    page.lines.forEach(onLine);
    cursor = page.next_cursor;
    if (page.lines.length < PAGE) return;
  }
}

/**
 * A response's output as it is written, until its round finished: the stream of server-sent events,
 * resumed after the last line seen (Last-Event-ID) when the connection breaks.
 */
export async function followOutput(client: ApiClient, path: string[], onLine: (line: OutputLine) => void, reconnects = 10): Promise<void> {
  let last: string | null = null;
  let failures = 0;
  let connected = false;
  for (;;) {
    const controller = new AbortController();
    let error: unknown = null;
    let progressed = false;
    try {
      const res = await client.send('GET', path, {
        headers: { accept: 'text/event-stream', ...(last === null ? {} : { 'last-event-id': last }) }, signal: controller.signal,
      });
      connected = true;
      for await (const message of readServerSentEvents(res.body as ReadableStream<Uint8Array>)) {
        if (message.event === 'end') return;
        if (message.event !== 'line' || !message.data) continue;
        onLine(JSON.parse(message.data) as OutputLine);
        if (message.id) last = message.id;
        progressed = true;
      }
    } catch (err) {
      error = err;
    } finally {
      controller.abort();
    }
    if (error instanceof CliError && error.httpStatus !== undefined && error.httpStatus < 500) throw error;
    // An API that was never reached is a wrong address or a stopped API, told at once as the other commands
    // do; reconnecting is for a stream that was running.
    if (!connected && error !== null) throw error;
    failures = progressed ? 0 : failures + 1;
    if (failures > reconnects) {
      throw new CliError(`lost the output stream of ${path.slice(0, 2).join('/')} on ${path[3]}: ${error instanceof Error ? error.message : 'the API closed it'}`);
    }
    if (failures > 0) await sleep(500 * failures);
  }
}
