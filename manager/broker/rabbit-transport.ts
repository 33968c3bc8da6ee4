import amqp, { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { MessageQueueConfig } from '../../config/schema';
import { BrokerUnavailableError } from '../errors';
import type { Logger } from '../logger';
import { coalesceWrites } from './coalesce-writes';
import { deadLetterName, exchangeName, queueArguments, queueName } from '../topology';
import type { Delivery, DeliveryHandler, PublishOptions, Transport } from '../transport';
import { CONTENT_TYPE, encodeMessage, RESENT_HEADER, TaskMessage } from '../wire';

export interface RabbitTransportOptions {
  /** Shown in the management UI's connection list. */
  connectionName: string;
  publishTimeoutMs: number;
  logger: Logger;
}

interface ConsumerSpec {
  taskType: string;
  endpoint: string;
  handler: DeliveryHandler;
  channel: Channel | null;
  tag: string | null;
  /** The connection this consumer was started (or is being started) on: at most one start per connection. */
  startedOn: ChannelModel | null;
}

const MAX_BACKOFF_MS = 15_000;

/**
 * RabbitMQ through amqplib: one long-lived connection, one confirm channel for publishing and
 * declarations, one channel per consumer. A lost connection or channel (including a forced close,
 * which emits `close` without `error`) tears the connection down and reconnects with backoff;
 * declarations are repeated and consumers re-established on the new connection.
 */
export class RabbitTransport implements Transport {
  readonly durable = true;
  private conn: ChannelModel | null = null;
  private pub: ConfirmChannel | null = null;
  private readonly declared = new Map<string, Promise<void>>();
  private readonly consumers: ConsumerSpec[] = [];
  /** Channels that are gone; an ack on them would throw, and the broker has requeued their deliveries. */
  private readonly deadChannels = new WeakSet<Channel>();
  private consuming = true;
  private closing = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private blocked = false;
  private drainWaiters: (() => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly mq: MessageQueueConfig, private readonly options: RabbitTransportOptions) {
    this.log = options.logger.child({ component: 'rabbitmq' });
  }

  get connected(): boolean {
    return this.pub !== null;
  }

  /** Tries once; if the broker is away, keeps trying in the background and resolves anyway. */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      this.log.warn('broker unavailable, retrying in the background', { err });
      this.scheduleReconnect();
    }
  }

  private async connect(): Promise<void> {
    const { host, port, username, password, virtual_host, heartbeat } = this.mq;
    const conn = await amqp.connect(
      { protocol: 'amqp', hostname: host, port, username, password, vhost: virtual_host, heartbeat },
      { clientProperties: { connection_name: this.options.connectionName } },
    );
    if (!coalesceWrites(conn)) this.log.debug('amqplib socket not reachable; frames are written one by one');
    conn.on('error', (err: Error) => this.log.warn('connection error', { err }));
    conn.on('close', () => this.onConnectionLost(conn));
    conn.on('blocked', (reason: string) => this.log.warn('broker blocked publishing', { reason }));
    try {
      const pub = await conn.createConfirmChannel();
      this.watchChannel(pub, conn, 'publish');
      pub.on('drain', () => this.unblock());
      const dlx = deadLetterName(this.mq.exchange);
      await pub.assertExchange(dlx, 'fanout', { durable: true });
      await pub.assertQueue(dlx, { durable: true, arguments: { 'x-queue-type': this.mq.queue_type } });
      await pub.bindQueue(dlx, dlx, '');
      this.conn = conn;
      this.pub = pub;
      this.declared.clear();
      if (this.consuming) for (const spec of this.consumers) await this.startConsumer(spec);
    } catch (err) {
      this.conn = null;
      this.pub = null;
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.attempt = 0;
    this.log.info('connected', { host, port, vhost: virtual_host });
  }

  private watchChannel(ch: Channel, conn: ChannelModel, role: string): void {
    ch.on('error', (err: Error) => this.log.warn('channel error', { role, err }));
    ch.on('close', () => {
      this.deadChannels.add(ch);
      // A channel closed by the broker (a refused declaration, a deleted queue) takes the whole
      // connection down, so that everything is declared again from a known state.
      if (!this.closing && conn === this.conn) {
        this.log.warn('channel closed unexpectedly, reconnecting', { role });
        conn.close().catch(() => undefined);
      }
    });
  }

  private onConnectionLost(conn: ChannelModel): void {
    if (conn !== this.conn && this.conn !== null) return;
    const wasConnected = this.conn === conn;
    this.conn = null;
    this.pub = null;
    for (const spec of this.consumers) {
      spec.channel = null;
      spec.tag = null;
      spec.startedOn = null;
    }
    this.unblock();
    if (this.closing) return;
    if (wasConnected) this.log.warn('connection lost, reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnectTimer) return;
    const base = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect().catch((err: unknown) => {
        this.log.warn('reconnect failed', { err, attempt: this.attempt });
        this.scheduleReconnect();
      });
    }, delay);
  }

  private requirePublishChannel(): ConfirmChannel {
    if (!this.pub) throw new BrokerUnavailableError();
    return this.pub;
  }

  /** Declares once per connection; concurrent callers share the same declaration. */
  private declareOnce(key: string, declare: () => Promise<unknown>): Promise<void> {
    let pending = this.declared.get(key);
    if (!pending) {
      pending = declare().then(() => undefined);
      pending.catch(() => this.declared.delete(key));
      this.declared.set(key, pending);
    }
    return pending;
  }

  private async declareExchange(ch: Channel, taskType: string): Promise<string> {
    const name = exchangeName(this.mq.exchange, taskType);
    await this.declareOnce(`x:${name}`, () => ch.assertExchange(name, 'fanout', { durable: true }));
    return name;
  }

  private async declareQueue(ch: Channel, taskType: string, endpoint: string): Promise<string> {
    const exchange = await this.declareExchange(ch, taskType);
    const name = queueName(this.mq.exchange, taskType, endpoint);
    await this.declareOnce(`q:${name}`, async () => {
      await ch.assertQueue(name, { durable: true, arguments: queueArguments(this.mq) });
      await ch.bindQueue(name, exchange, '');
    });
    return name;
  }

  async ensureEndpointQueues(taskType: string, endpoints: readonly string[]): Promise<void> {
    const ch = this.requirePublishChannel();
    try {
      await Promise.all(endpoints.map((ep) => this.declareQueue(ch, taskType, ep)));
    } catch (err) {
      throw new BrokerUnavailableError('could not declare the endpoint queues', { cause: err });
    }
  }

  private unblock(): void {
    this.blocked = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  async publish(message: TaskMessage, options: PublishOptions = {}): Promise<void> {
    while (this.blocked) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    const ch = this.requirePublishChannel();
    let exchange: string;
    try {
      exchange = await this.declareExchange(ch, message.type);
    } catch (err) {
      throw new BrokerUnavailableError('could not declare the exchange', { cause: err });
    }
    const body = encodeMessage(message);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new BrokerUnavailableError(`publish not confirmed within ${this.options.publishTimeoutMs} ms`));
      }, this.options.publishTimeoutMs);
      try {
        const ok = ch.publish(exchange, '', body, {
          persistent: true, contentType: CONTENT_TYPE, messageId: String(message.id), type: message.type,
          ...(options.resend ? { headers: { [RESENT_HEADER]: true } } : {}),
        }, (err: unknown) => {
          clearTimeout(timer);
          if (err) reject(new BrokerUnavailableError('publish rejected by the broker', { cause: err }));
          else resolve();
        });
        if (!ok) this.blocked = true;
      } catch (err) {
        clearTimeout(timer);
        reject(new BrokerUnavailableError('publish failed', { cause: err }));
      }
    });
  }

  async consume(taskType: string, endpoint: string, handler: DeliveryHandler): Promise<void> {
    const spec: ConsumerSpec = { taskType, endpoint, handler, channel: null, tag: null, startedOn: null };
    this.consumers.push(spec);
    if (this.conn && this.consuming) await this.startConsumer(spec);
  }

  private async startConsumer(spec: ConsumerSpec): Promise<void> {
    const conn = this.conn ?? (() => { throw new BrokerUnavailableError(); })();
    // consume() while connect() is starting every consumer would otherwise start this one twice.
    if (spec.startedOn === conn) return;
    spec.startedOn = conn;
    const ch = await conn.createChannel();
    this.watchChannel(ch, conn, `consume ${spec.taskType}/${spec.endpoint}`);
    await ch.prefetch(this.mq.prefetch);
    const exchange = exchangeName(this.mq.exchange, spec.taskType);
    const queue = queueName(this.mq.exchange, spec.taskType, spec.endpoint);
    await ch.assertExchange(exchange, 'fanout', { durable: true });
    await ch.assertQueue(queue, { durable: true, arguments: queueArguments(this.mq) });
    await ch.bindQueue(queue, exchange, '');
    const { consumerTag } = await ch.consume(queue, (msg) => {
      if (msg === null) {
        // The broker cancelled the consumer (queue deleted): start over so the queue is declared again.
        this.log.warn('consumer cancelled by the broker', { queue });
        conn.close().catch(() => undefined);
        return;
      }
      this.dispatch(spec, ch, msg);
    }, { noAck: false });
    spec.channel = ch;
    spec.tag = consumerTag;
    this.log.info('consuming', { queue });
  }

  private dispatch(spec: ConsumerSpec, ch: Channel, msg: ConsumeMessage): void {
    let settled = false;
    const settle = (action: string, fn: () => void): void => {
      if (settled) return;
      settled = true;
      if (this.deadChannels.has(ch)) {
        this.log.info('channel gone before settling; the broker redelivers', { action, messageId: msg.properties.messageId });
        return;
      }
      try {
        fn();
      } catch (err) {
        this.log.warn('could not settle a delivery', { action, err });
      }
    };
    const delivery: Delivery = {
      body: msg.content,
      contentType: msg.properties.contentType as string | undefined,
      redelivered: msg.fields.redelivered,
      resent: (msg.properties.headers as Record<string, unknown> | undefined)?.[RESENT_HEADER] === true,
      ack: () => settle('ack', () => ch.ack(msg)),
      deadLetter: () => settle('dead-letter', () => ch.nack(msg, false, false)),
      release: () => settle('release', () => ch.nack(msg, false, true)),
    };
    spec.handler(delivery).catch((err: unknown) => {
      this.log.error('delivery handler failed', { err });
      delivery.release();
    });
  }

  async stopConsuming(): Promise<void> {
    this.consuming = false;
    await Promise.all(this.consumers.map(async (spec) => {
      if (spec.channel && spec.tag && !this.deadChannels.has(spec.channel)) {
        await spec.channel.cancel(spec.tag).catch(() => undefined);
      }
      spec.tag = null;
    }));
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.consuming = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const conn = this.conn;
    this.conn = null;
    this.pub = null;
    this.unblock();
    if (conn) await conn.close().catch(() => undefined);
  }
}
