import type { Broker, IncomingMessage, MessageHandler, Reservation } from './broker';
import { SIGNATURE_HEADER, TaskSigner } from './task-signature';
import type { Topology } from './topology';
import { CancelledReply, ControlMessage, encode, Notice, RESENT_HEADER, StateReply, TaskMessage } from './wire';

/** Targeted sends carry the other targets in a BCC header, which must fit one AMQP frame (128 KiB). */
const MAX_BCC_BYTES = 32 * 1024;

export interface PublishTaskOptions {
  /** To every queue bound to the task type's fanout (a task that listed no endpoints), else to its endpoints' queues only. */
  broadcast: boolean;
  /**
   * `unsent`: sent again because the broker never confirmed it (deliveries carry `x-tasker-resent`);
   * `unfinished`: sent again on start by a broker that kept nothing across the restart, standing for the
   * broker's own redelivery.
   */
  resend?: 'unsent' | 'unfinished';
  /** A targeted send to these endpoints only (a retry, a resend), instead of all of `endpoints`. */
  targets?: readonly string[];
  /** When the task's run is over (the database's clock): signed with the message, an endpoint refuses it after. */
  deadline: Date;
}

/** What an unbounded broker (RabbitMQ) holds: nothing. */
const UNBOUNDED: Reservation = { release: () => undefined };

/** Splits the target queues into publishes whose BCC header stays within a frame. */
export function bccChunks(queues: string[]): string[][] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const q of queues) {
    const size = Buffer.byteLength(q) + 8;
    if (current.length > 0 && bytes + size > MAX_BCC_BYTES) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(q);
    bytes += size;
  }
  if (current.length) chunks.push(current);
  return chunks;
}

/**
 * The server side of the protocol: declares its exchanges and queues, publishes tasks (broadcast or
 * targeted), consumes the response events and the state requests, and answers the latter.
 */
export class ServerTransport {
  /** `signer`: signs every task message (docs/security.md "Signed tasks"); null: they go unsigned. */
  constructor(readonly broker: Broker, private readonly topology: Topology, taskTypes: readonly string[], private readonly signer: TaskSigner | null = null) {
    broker.onConnect(async (declare) => {
      for (const type of taskTypes) await declare.exchange(topology.taskExchange(type), 'fanout');
      await declare.exchange(topology.responsesExchange, 'direct');
      await declare.exchange(topology.controlExchange, 'fanout');
      await declare.exchange(topology.notifyExchange, 'fanout');
      await declare.exchange(topology.deadLetter, 'fanout');
      await declare.queue(topology.deadLetterQueue);
      await declare.queue(topology.eventsQueue);
      await declare.queue(topology.stateQueue);
    });
  }

  start(): Promise<void> {
    return this.broker.start();
  }

  get connected(): boolean {
    return this.broker.connected;
  }

  get durable(): boolean {
    return this.broker.durable;
  }

  /**
   * Room for a new task in the queues it will reach (its endpoints', or every queue of its type's fanout
   * when it lists none), held until released; `null` when the broker's queues are bounded and one is full.
   */
  admit(type: string, endpoints: readonly string[] | null): Reservation | null {
    if (!this.broker.reserve) return UNBOUNDED;
    return endpoints === null
      ? this.broker.reserve(this.topology.taskExchange(type), [''])
      : this.broker.reserve('', endpoints.map((ep) => this.topology.endpointQueue(type, ep).name));
  }

  /**
   * Publishes a task; resolves once the broker confirmed every copy. The expected endpoints' queues are
   * declared first, so that an endpoint that is down, or never ran, keeps the task until it starts.
   */
  async publishTask(msg: TaskMessage, options: PublishTaskOptions): Promise<void> {
    const queues = (options.targets ?? msg.endpoints).map((ep) => this.topology.endpointQueue(msg.type, ep));
    if (queues.length === 0) return;
    await Promise.all(queues.map((q) => this.broker.declareQueue(q)));
    const body = encode(msg);
    // Every task message leaves through here (first sends, rollout batches, retries, resends): each is signed.
    const headers: Record<string, unknown> = {
      ...(options.resend === 'unsent' ? { [RESENT_HEADER]: true } : {}),
      ...(this.signer ? { [SIGNATURE_HEADER]: this.signer.header({ id: msg.id, type: msg.type, round: msg.round ?? 0, deadline: options.deadline }, body) } : {}),
    };
    const message = {
      body, persistent: true, messageId: String(msg.id), type: msg.type, mandatory: true, copies: queues.length,
      headers: Object.keys(headers).length > 0 ? headers : undefined,
      redelivered: options.resend === 'unfinished',
    };
    if (options.broadcast && options.targets === undefined) {
      await this.broker.publish(this.topology.taskExchange(msg.type), '', message);
      return;
    }
    // Targeted: through the default exchange, one routing key per target queue, so endpoints that are
    // not targeted receive nothing.
    await Promise.all(bccChunks(queues.map((q) => q.name)).map(([first, ...rest]) =>
      this.broker.publish('', first, { ...message, bcc: rest })));
  }

  /** Deletes an endpoint's queues of these task types, with whatever waits in them. */
  async deleteEndpointQueues(endpoint: string, taskTypes: readonly string[]): Promise<void> {
    for (const type of taskTypes) await this.broker.deleteQueue(this.topology.endpointQueueName(type, endpoint));
  }

  consumeEvents(prefetch: number, handler: MessageHandler): Promise<void> {
    return this.broker.consume(this.topology.eventsQueue, prefetch, handler);
  }

  serveStateRequests(prefetch: number, handler: MessageHandler): Promise<void> {
    return this.broker.consume(this.topology.stateQueue, prefetch, handler);
  }

  reply(request: IncomingMessage, reply: StateReply | CancelledReply): void {
    this.broker.reply(request, encode(reply));
  }

  /** To every endpoint manager that is connected now; those that are not ask for the cancelled tasks when they connect. */
  publishControl(msg: ControlMessage): Promise<void> {
    return this.broker.publish(this.topology.controlExchange, '', { body: encode(msg), persistent: false, type: 'control' });
  }

  /** To every API process (this one too), best effort: a lost notice delays a waiting client until its timeout. */
  publishNotice(notice: Notice): Promise<void> {
    return this.broker.publish(this.topology.notifyExchange, '', { body: encode(notice), persistent: false, type: 'notice' });
  }

  consumeNotices(handler: MessageHandler): Promise<void> {
    return this.broker.consume(this.topology.notifyQueue, 1000, handler);
  }

  /** Messages waiting in the dead-letter queue. */
  deadLetterDepth(): Promise<number> {
    return this.broker.queueDepth(this.topology.deadLetter);
  }

  stopConsuming(): Promise<void> {
    return this.broker.stopConsuming();
  }

  close(): Promise<void> {
    return this.broker.close();
  }
}
