import type { QueueDecl } from './topology';

/**
 * The few broker operations tasker uses, on one connection. RabbitMQ (amqplib) implements them for
 * production; the in-process broker of the standalone mode implements the same semantics inside one
 * process. The protocol's two sides (ServerTransport, EndpointTransport) are written once on top.
 */

export interface OutgoingMessage {
  body: Buffer;
  persistent: boolean;
  messageId?: string;
  /** AMQP `type` property. */
  type?: string;
  headers?: Record<string, unknown>;
  /** Sets AMQP `user_id` to this connection's user; RabbitMQ refuses any other value, so the receiver can trust it. */
  stampUser?: boolean;
  /** Dropped by the broker when not consumed within this many ms. */
  expirationMs?: number;
  /** More routing keys for the same message (RabbitMQ's sender-selected distribution; the header is not delivered). */
  bcc?: string[];
  /** The publish fails when the message reaches no queue at all (`messageId` required). */
  mandatory?: boolean;
  /** How many queues it reaches (a fanout's or the bcc's): the broker's confirm waits on each of them. */
  copies?: number;
  /**
   * Delivered with `redelivered` set. Only the in-process broker honours it: on start it stands for the
   * redelivery that a broker which kept its queues across the restart would make.
   */
  redelivered?: boolean;
}

/** One message handed to a consumer. Exactly one of ack/deadLetter/release takes effect per delivery. */
export interface IncomingMessage {
  readonly body: Buffer;
  readonly contentType: string | undefined;
  /** This very message was delivered before (and may have been worked on there). */
  readonly redelivered: boolean;
  readonly headers: Readonly<Record<string, unknown>>;
  /** AMQP `user_id`, validated by the broker against the publisher's connection. */
  readonly userId: string | undefined;
  readonly replyTo: string | undefined;
  readonly correlationId: string | undefined;
  /** Done with it. */
  ack(): void;
  /** Refused: moved to the dead-letter queue. */
  deadLetter(): void;
  /** Could not be handled now: handed back for redelivery. */
  release(): void;
}

/** Room held in a bounded broker's queues until released (see `Broker.reserve`). */
export interface Reservation {
  release(): void;
}

export type MessageHandler = (message: IncomingMessage) => void;

export type ExchangeType = 'fanout' | 'direct';

export interface Declarer {
  exchange(name: string, type: ExchangeType): Promise<void>;
  queue(decl: QueueDecl): Promise<void>;
}

export interface Broker {
  /** The user this connection authenticates as: what `stampUser` puts into `user_id`. */
  readonly user: string;
  readonly connected: boolean;
  /** Whether queued messages survive a restart of this process (RabbitMQ: yes; in-process: no). */
  readonly durable: boolean;
  /** Connects; keeps reconnecting in the background after a loss (or a failed first try) until `close()`. */
  start(): Promise<void>;
  /** Declarations run on every (re)connect, before consumers start. Register before `start()`. */
  onConnect(setup: (declare: Declarer) => Promise<void>): void;
  /** Declares a queue with its bindings, once per connection; concurrent callers share one declaration. */
  declareQueue(decl: QueueDecl): Promise<void>;
  /**
   * Deletes a queue with its messages (none there: nothing to do), and forgets it was declared, so that a
   * later publish to it declares it again.
   */
  deleteQueue(name: string): Promise<void>;
  /** Resolves once the broker has taken responsibility for the message (publisher confirm). */
  publish(exchange: string, routingKey: string, message: OutgoingMessage): Promise<void>;
  /**
   * Declares and consumes a queue; re-established after every reconnect (an exclusive queue is a new one
   * each time). `onStarted` runs each time the consumer has started.
   */
  consume(queue: QueueDecl, prefetch: number, handler: MessageHandler, onStarted?: () => void): Promise<void>;
  /** Messages ready in a queue; fails if there is no such queue. */
  queueDepth(name: string): Promise<number>;
  /** Publishes a request and resolves with the reply's body (RabbitMQ's direct reply-to). */
  request(exchange: string, routingKey: string, message: OutgoingMessage, timeoutMs: number): Promise<Buffer>;
  /**
   * Holds room for one message in every queue a publish to (`exchange`, `keys`) would reach; `null` when
   * one of them is full. Only a broker whose queues are bounded (the in-process one) has it.
   */
  reserve?(exchange: string, keys: readonly string[]): Reservation | null;
  /** Answers a request received by `consume`. Best effort: a requester that is gone gets nothing. */
  reply(request: IncomingMessage, body: Buffer): void;
  /** Stops taking new deliveries; deliveries already handed out may still be settled. */
  stopConsuming(): Promise<void>;
  close(): Promise<void>;
}
