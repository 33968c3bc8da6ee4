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
}

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

  constructor(private readonly o: StateResponderOptions) {
    this.log = o.logger.child({ component: 'state-responder' });
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
    let req: StateRequest | CancelledRequest;
    try {
      req = decodeServerRequest(m.body, m.contentType);
    } catch (err) {
      this.log.warn({ err, userId: m.userId, body: m.body.subarray(0, 200).toString('utf8') }, 'invalid state request dead-lettered');
      m.deadLetter();
      return;
    }
    const refused = this.o.identity === 'per_endpoint_user' && req.endpoint !== m.userId;
    if (refused) this.log.warn({ endpoint: req.endpoint, userId: m.userId ?? null }, 'state request refused: its endpoint is not the sender');
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
  }
}
