import { TooManyStreamsError } from '../lib/errors';

/** Seconds a refused client is told to wait: streams of others end as their clients go away. */
export const STREAM_RETRY_AFTER_S = 5;

export interface StreamLimitsOptions {
  /** Open streams in this process at most. */
  maxStreams: number;
  /** Open streams of one client (token, or address when the API is open) at most. */
  maxPerClient: number;
}

/**
 * Counts the open event streams, in all and per client, so that one careless or hostile client cannot
 * hold every socket and its buffers: a stream past either bound is refused (503 with Retry-After).
 * Only counts are kept, and a client's entry goes with its last stream, so nothing outlives a stream.
 */
export class StreamLimits {
  private readonly perClient = new Map<string, number>();
  private total = 0;

  constructor(private readonly options: StreamLimitsOptions) {}

  get open(): number {
    return this.total;
  }

  /** Takes a slot for `client`'s stream or throws TooManyStreamsError; the answer frees it (once). */
  acquire(client: string): () => void {
    const mine = this.perClient.get(client) ?? 0;
    if (this.total >= this.options.maxStreams) throw new TooManyStreamsError(`the server holds its most event streams (${this.options.maxStreams})`, STREAM_RETRY_AFTER_S);
    if (mine >= this.options.maxPerClient) throw new TooManyStreamsError(`this client holds its most event streams (${this.options.maxPerClient})`, STREAM_RETRY_AFTER_S);
    this.perClient.set(client, mine + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left > 0) this.perClient.set(client, left);
      else this.perClient.delete(client);
    };
  }
}
