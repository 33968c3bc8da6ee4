import { Batcher } from '../lib/batcher';
import { InFlight } from '../lib/in-flight';
import type { Logger } from '../lib/logger';
import type { IncomingMessage } from '../protocol/broker';
import type { ServerTransport } from '../protocol/server-transport';
import { CancelledReply, CancelledRequest, decodeServerRequest, StateReply, StateRequest } from '../protocol/wire';
import type { EndpointIdentity } from './collector';
import type { Completion, ReceiveItem, ReceiveOutcome } from './storage/completion';
import { isTransientDbError } from './storage/database';
import type { ResponseStore } from './storage/response-store';
import type { Metrics } from './metrics';
import { RefusalLog } from './refusal-log';
import { MAX_INBOUND_MESSAGE_BYTES } from './inbound-limit';
import { REPLY_TO } from '../protocol/topology';

/**
 * What RabbitMQ puts in `reply_to` for a request sent with direct reply-to (as the managers do). Any other
 * name would be a queue the server side publishes into with its own permissions: an endpoint could fill
 * another's task queue.
 */
const DIRECT_REPLY_TO = `${REPLY_TO}.`;

export interface StateResponderOptions {
  completion: Completion;
  responses: ResponseStore;
  transport: ServerTransport;
  identity: EndpointIdentity;
  /** Most requests answered in one transaction. */
  batchSize: number;
  /** Most entries of a cancelled-tasks reply (`api.cancelled_listed`); a longer list is cut and says so. */
  cancelledListed: number;
  logger: Logger;
  metrics: Metrics;
}

export const isDirectReplyTo = (replyTo: string): boolean => replyTo.startsWith(DIRECT_REPLY_TO) && replyTo.length > DIRECT_REPLY_TO.length;

/**
 * Answers the endpoints' requests (RabbitMQ request/reply with direct reply-to): whether a copy of a task
 * that may have run before is to run (its attempt recorded in the same transaction), is finished, out of
 * attempts or cancelled; and which tasks were cancelled for an endpoint that just connected. While the
 * database is away it answers `unavailable`, and the endpoint asks again.
 */
export class StateResponder {
  private readonly receiver: Batcher<ReceiveItem, ReceiveOutcome>;
  private readonly inFlight = new InFlight();
  private readonly log: Logger;
  private readonly refusals: RefusalLog;

  constructor(private readonly o: StateResponderOptions) {
    this.log = o.logger.child({ component: 'state-responder' });
    this.refusals = new RefusalLog(this.log, o.metrics);
    this.receiver = new Batcher((items) => o.completion.receiveMany(items), {
      maxBatch: o.batchSize, split: (err) => !isTransientDbError(err),
    });
  }

  start(): Promise<void> {
    return this.o.transport.serveStateRequests(this.o.batchSize, (m) => { void this.inFlight.track(this.handle(m)); });
  }

  private answer(m: IncomingMessage, req: StateRequest, action: StateReply['action'], attempt?: number): void {
    this.o.transport.reply(m, { task_id: req.task_id, endpoint: req.endpoint, action, ...(attempt === undefined ? {} : { attempt }) });
    m.ack();
  }

  private async handle(m: IncomingMessage): Promise<void> {
    if (m.replyTo !== undefined && !isDirectReplyTo(m.replyTo)) {
      this.refusals.refused('reply_to', m.userId, 'state request refused: its reply_to is not a direct reply-to', { replyTo: m.replyTo.slice(0, 200) });
      m.deadLetter();
      return;
    }
    if (m.body.length > MAX_INBOUND_MESSAGE_BYTES) {
      this.refusals.refused('too_large', m.userId, 'state request over the size limit dead-lettered unparsed', { bytes: m.body.length, limit: MAX_INBOUND_MESSAGE_BYTES });
      m.deadLetter();
      return;
    }
    let req: StateRequest | CancelledRequest;
    try {
      req = decodeServerRequest(m.body, m.contentType);
    } catch (err) {
      this.refusals.refused('invalid', m.userId, 'invalid state request dead-lettered', { err, body: m.body.subarray(0, 200).toString('utf8') });
      m.deadLetter();
      return;
    }
    const refused = this.o.identity === 'per_endpoint_user' && req.endpoint !== m.userId;
    if (refused) this.refusals.refused('not_sender', m.userId, 'state request refused: its endpoint is not the sender', { endpoint: req.endpoint });
    // eslint-disable-next-line no-restricted-syntax -- the wire protocol's request kind (protocol/wire.ts), not a state
    if (req.kind === 'cancelled') return this.answerCancelled(m, req, refused);
    if (refused) {
      this.answer(m, req, 'refused');
      return;
    }
    let outcome: ReceiveOutcome;
    try {
      outcome = await this.receiver.submit({
        taskId: req.task_id, endpoint: req.endpoint, redelivered: req.redelivered, round: req.round ?? 0, maxAttempts: req.max_attempts,
      });
    } catch (err) {
      if (isTransientDbError(err)) this.log.debug({ err }, 'state request while the database is unavailable');
      else this.log.error({ err, taskId: req.task_id, endpoint: req.endpoint }, 'could not answer a state request');
      this.answer(m, req, 'unavailable');
      return;
    }
    if (outcome.action === 'exhausted') {
      this.log.warn({ taskId: req.task_id, endpoint: req.endpoint, attempts: outcome.attempts }, 'handler attempts exhausted; response finished with errnr 125');
    }
    this.answer(m, req, outcome.action, outcome.action === 'run' ? outcome.attempt : undefined);
  }

  private async answerCancelled(m: IncomingMessage, req: CancelledRequest, refused: boolean): Promise<void> {
    let reply: Omit<CancelledReply, 'endpoint'>;
    if (refused) {
      reply = { action: 'refused', cancelled: [] };
    } else {
      try {
        // One more than listed tells whether the list was cut.
        const rows = await this.o.responses.cancelledFor(req.endpoint, this.o.cancelledListed + 1);
        const truncated = rows.length > this.o.cancelledListed;
        reply = { action: 'cancelled', cancelled: rows.slice(0, this.o.cancelledListed), ...(truncated ? { truncated } : {}) };
      } catch (err) {
        if (!isTransientDbError(err)) this.log.error({ err, endpoint: req.endpoint }, 'could not list the cancelled tasks of an endpoint');
        reply = { action: 'unavailable', cancelled: [] };
      }
    }
    this.o.transport.reply(m, { endpoint: req.endpoint, ...reply });
    m.ack();
  }

  /** Waits (up to `timeoutMs`) for the requests in hand; call once the transport stopped consuming. */
  async drain(timeoutMs: number): Promise<void> {
    await this.inFlight.settle(timeoutMs);
    this.refusals.stop();
  }
}
