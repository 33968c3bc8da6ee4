import type { TaskMessage } from './wire';

/** One message handed to a consumer. Exactly one of ack/deadLetter/release is called per delivery. */
export interface Delivery {
  readonly body: Buffer;
  readonly contentType: string | undefined;
  /** This very message was delivered before (and may have started its handler there). */
  readonly redelivered: boolean;
  /** A task published again by the resend job: another copy may have been delivered before. */
  readonly resent: boolean;
  /** Done with it: the response is committed (or the task is not for this endpoint). */
  ack(): void;
  /** Not a valid task, or out of attempts: move it to the dead-letter queue. */
  deadLetter(): void;
  /** Could not process it now (e.g. the database is down): give it back for redelivery. */
  release(): void;
}

export interface PublishOptions {
  /**
   * `unsent`: sent again because the broker never confirmed it (deliveries marked `resent`); `unfinished`:
   * sent again on start by a transport that lost its queues, which stands for the broker's own redelivery
   * (deliveries marked `redelivered`).
   */
  resend?: 'unsent' | 'unfinished';
}

export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

/**
 * How tasks travel from the API to the endpoint managers: one durable queue per (task type, endpoint),
 * fed by the type's fanout. The rest of the system knows only this interface.
 */
export interface Transport {
  /** Connects; keeps reconnecting in the background after a loss until `close()`. */
  start(): Promise<void>;
  readonly connected: boolean;
  /** Whether queued messages survive a restart of this process (RabbitMQ: yes; in-process: no). */
  readonly durable: boolean;
  /** Makes sure the queues of these endpoints exist and are bound, so they keep tasks while the endpoint is away. */
  ensureEndpointQueues(taskType: string, endpoints: readonly string[]): Promise<void>;
  /** Resolves once the broker has taken responsibility for the message (publisher confirm). */
  publish(message: TaskMessage, options?: PublishOptions): Promise<void>;
  /** Consumes the endpoint's queue for this type; re-established after every reconnect. */
  consume(taskType: string, endpoint: string, handler: DeliveryHandler): Promise<void>;
  /** Stops taking new deliveries; deliveries already handed out may still be acked. */
  stopConsuming(): Promise<void>;
  close(): Promise<void>;
}
