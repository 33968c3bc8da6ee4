import { Batcher } from '../lib/batcher';
import type { Logger } from '../lib/logger';
import { retrying } from '../lib/retry';
import type { EndpointTransport } from '../protocol/endpoint-transport';
import type { OutputEvent, ResponseEvent } from '../protocol/wire';

/** Events of one message, by `weight`: one larger result (up to MAX_RESPONSE_PAYLOAD_BYTES) goes alone. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const MAX_EVENTS_PER_MESSAGE = 200;

type Reported = ResponseEvent | OutputEvent;

function weight(event: Reported): number {
  // Bytes, not characters: a line's escapes may take six bytes a character (at most MAX_OUTPUT_EVENT_BYTES).
  if (event.kind === 'output') return 128 + event.lines.reduce((n, l) => n + 64 + Buffer.byteLength(JSON.stringify(l.text)), 0);
  if (event.kind !== 'result') return 128;
  return 256 + (event.errmsg?.length ?? 0) + (event.payload === null ? 0 : JSON.stringify(event.payload).length);
}

/**
 * Longest pause between tries of a result. Short: a cluster nacks while a quorum queue elects its new
 * leader, for a few seconds, and each result waiting here holds a task's delivery.
 */
const MAX_RETRY_DELAY_MS = 1000;


/**
 * Publishes an endpoint's receipts and results. Events reported while the previous message waits for its
 * confirm travel together as the next message, so that under load one publish (and one confirm) serves
 * many deliveries, while a lone event still goes out at once.
 */
export class Reporter {
  private readonly batcher: Batcher<Reported, void>;

  constructor(transport: EndpointTransport, private readonly log: Logger, private readonly stopping: () => boolean) {
    this.batcher = new Batcher(async (events) => {
      await transport.publishEvents(events);
      return events.map((): void => undefined);
    }, { maxBatch: MAX_EVENTS_PER_MESSAGE, weigh: weight, maxWeight: MAX_MESSAGE_BYTES });
  }

  /**
   * Resolves once the broker confirmed the event. While the broker is away it tries again with backoff;
   * it gives up only when the manager is stopping (the task delivery is then left unacked).
   */
  report(event: ResponseEvent): Promise<void> {
    return retrying(() => this.batcher.submit(event), {
      base: 100, max: MAX_RETRY_DELAY_MS, retryIf: () => !this.stopping(),
      onRetry: (err, attempt) => {
        if (attempt === 0) this.log.warn({ kind: event.kind, taskId: event.task_id, err }, 'could not publish a response event, retrying');
      },
    });
  }

  /**
   * Once, resolving when confirmed or given up on: a run's output lines are worth less than holding the
   * run's result while the broker is away.
   */
  output(event: OutputEvent): Promise<void> {
    return this.batcher.submit(event).catch((err: unknown) => this.log.debug({ taskId: event.task_id, err }, 'output lines not published'));
  }

  /** Once, without waiting: for receipts, which only show that a handler is running. */
  notify(event: ResponseEvent): void {
    this.batcher.submit(event).catch((err: unknown) => this.log.debug({ taskId: event.task_id, err }, 'receipt not published'));
  }
}
