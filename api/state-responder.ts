import { Batcher } from '../lib/batcher';
import { InFlight } from '../lib/in-flight';
import type { Logger } from '../lib/logger';
import type { IncomingMessage } from '../protocol/broker';
import type { ServerTransport } from '../protocol/server-transport';
import { decodeStateRequest, StateReply, StateRequest } from '../protocol/wire';
import type { EndpointIdentity } from './collector';
import type { Completion, ReceiveItem, ReceiveOutcome } from './storage/completion';
import { isTransientDbError } from './storage/database';

export interface StateResponderOptions {
  completion: Completion;
  transport: ServerTransport;
  identity: EndpointIdentity;
  /** Most requests answered in one transaction. */
  batchSize: number;
  logger: Logger;
}

/**
 * Answers the endpoints' state requests (RabbitMQ request/reply with direct reply-to): whether a copy of
 * a task that may have run before is to run (its attempt recorded in the same transaction), is finished,
 * or is out of attempts. While the database is away it answers `unavailable`, and the endpoint asks again.
 */
export class StateResponder {
  private readonly receiver: Batcher<ReceiveItem, ReceiveOutcome>;
  private readonly inFlight = new InFlight();
  private readonly log: Logger;

  constructor(private readonly o: StateResponderOptions) {
    this.log = o.logger.child({ component: 'state-responder' });
    this.receiver = new Batcher((items) => o.completion.receiveMany(items, new Date()), {
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
    let req: StateRequest;
    try {
      req = decodeStateRequest(m.body, m.contentType);
    } catch (err) {
      this.log.warn('invalid state request dead-lettered', { err, userId: m.userId, body: m.body.subarray(0, 200).toString('utf8') });
      m.deadLetter();
      return;
    }
    if (this.o.identity === 'per_endpoint_user' && req.endpoint !== m.userId) {
      this.log.warn('state request refused: its endpoint is not the sender', { endpoint: req.endpoint, userId: m.userId ?? null, taskId: req.task_id });
      this.answer(m, req, 'refused');
      return;
    }
    let outcome: ReceiveOutcome;
    try {
      outcome = await this.receiver.submit({ taskId: req.task_id, endpoint: req.endpoint, redelivered: req.redelivered, maxAttempts: req.max_attempts });
    } catch (err) {
      if (isTransientDbError(err)) this.log.debug('state request while the database is unavailable', { err });
      else this.log.error('could not answer a state request', { err, taskId: req.task_id, endpoint: req.endpoint });
      this.answer(m, req, 'unavailable');
      return;
    }
    if (outcome.action === 'exhausted') {
      this.log.warn('handler attempts exhausted; response finished with errnr 125', { taskId: req.task_id, endpoint: req.endpoint, attempts: outcome.attempts });
    }
    this.answer(m, req, outcome.action, outcome.action === 'run' ? outcome.attempt : undefined);
  }

  /** Waits (up to `timeoutMs`) for the requests in hand; call once the transport stopped consuming. */
  async drain(timeoutMs: number): Promise<void> {
    await this.inFlight.settle(timeoutMs);
  }
}
