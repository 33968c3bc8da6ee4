import { BrokerUnavailableError } from '../errors';
import type { Logger } from '../logger';
import { queueName } from '../topology';
import type { Delivery, DeliveryHandler, PublishOptions, Transport } from '../transport';
import { CONTENT_TYPE, encodeMessage, TaskMessage } from '../wire';

interface Queued {
  body: Buffer;
  redelivered: boolean;
  resent: boolean;
}

interface Queue {
  name: string;
  messages: Queued[];
  handler: DeliveryHandler | null;
  unacked: number;
  scheduled: boolean;
}

const MAX_DEAD_LETTERS = 1000;

/**
 * Queues in this process, for the all-in-one mode that needs no broker. Same semantics as RabbitMQ
 * where they matter: one queue per (task type, endpoint) fed by the type's fanout, queues that keep
 * tasks for an endpoint that is not consuming yet, at most `prefetch` unacked deliveries per queue, a
 * released delivery handed out again. Messages are encoded as on the wire, so the consumer path is
 * the same. Nothing survives the process: on start the API redelivers what is unfinished from the
 * database (`durable` is false).
 */
export class InProcessTransport implements Transport {
  readonly durable = false;
  private readonly exchanges = new Map<string, Set<Queue>>();
  private readonly queues = new Map<string, Queue>();
  private readonly deadLetters: Buffer[] = [];
  private consuming = true;
  private closed = false;

  constructor(private readonly prefix: string, private readonly prefetch: number, private readonly log: Logger) {}

  get connected(): boolean {
    return !this.closed;
  }

  async start(): Promise<void> {}

  private queue(taskType: string, endpoint: string): Queue {
    const name = queueName(this.prefix, taskType, endpoint);
    let q = this.queues.get(name);
    if (!q) {
      q = { name, messages: [], handler: null, unacked: 0, scheduled: false };
      this.queues.set(name, q);
      const bound = this.exchanges.get(taskType) ?? new Set<Queue>();
      bound.add(q);
      this.exchanges.set(taskType, bound);
    }
    return q;
  }

  async ensureEndpointQueues(taskType: string, endpoints: readonly string[]): Promise<void> {
    for (const ep of endpoints) this.queue(taskType, ep);
  }

  async publish(message: TaskMessage, options: PublishOptions = {}): Promise<void> {
    if (this.closed) throw new BrokerUnavailableError('the in-process transport is closed');
    const body = encodeMessage(message);
    for (const q of this.exchanges.get(message.type) ?? []) {
      q.messages.push({ body, redelivered: options.resend === 'unfinished', resent: options.resend === 'unsent' });
      this.schedule(q);
    }
  }

  async consume(taskType: string, endpoint: string, handler: DeliveryHandler): Promise<void> {
    const q = this.queue(taskType, endpoint);
    q.handler = handler;
    this.schedule(q);
  }

  /** Deliveries are handed out from a later turn of the event loop, never inside the publisher's call. */
  private schedule(q: Queue): void {
    if (q.scheduled || !q.handler) return;
    q.scheduled = true;
    setImmediate(() => {
      q.scheduled = false;
      this.pump(q);
    });
  }

  private pump(q: Queue): void {
    while (this.consuming && q.handler && q.unacked < this.prefetch && q.messages.length > 0) {
      const item = q.messages.shift() as Queued;
      q.unacked++;
      this.deliver(q, q.handler, item);
    }
  }

  private deliver(q: Queue, handler: DeliveryHandler, item: Queued): void {
    let settled = false;
    const settle = (fn: () => void) => (): void => {
      if (settled) return;
      settled = true;
      q.unacked--;
      fn();
      this.schedule(q);
    };
    const delivery: Delivery = {
      body: item.body,
      contentType: CONTENT_TYPE,
      redelivered: item.redelivered,
      resent: item.resent,
      ack: settle(() => undefined),
      deadLetter: settle(() => {
        this.deadLetters.push(item.body);
        if (this.deadLetters.length > MAX_DEAD_LETTERS) this.deadLetters.shift();
      }),
      release: settle(() => q.messages.unshift({ ...item, redelivered: true })),
    };
    handler(delivery).catch((err: unknown) => {
      this.log.error('delivery handler failed', { queue: q.name, err });
      delivery.release();
    });
  }

  /** Messages moved to the dead-letter queue (the most recent ones). */
  get deadLettered(): readonly Buffer[] {
    return this.deadLetters;
  }

  async stopConsuming(): Promise<void> {
    this.consuming = false;
  }

  async close(): Promise<void> {
    this.consuming = false;
    this.closed = true;
    this.queues.clear();
    this.exchanges.clear();
  }
}
