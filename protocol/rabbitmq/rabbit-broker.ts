import { randomUUID } from 'node:crypto';
import amqp, { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { MessageQueueConfig } from '../../config/schema';
import { BrokerUnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { backoffDelay } from '../../lib/retry';
import type { Broker, Declarer, IncomingMessage, MessageHandler, OutgoingMessage } from '../broker';
import { QueueDecl, REPLY_TO } from '../topology';
import { CONTENT_TYPE } from '../wire';
import { PendingReplies } from '../pending-replies';
import { coalesceWrites } from './coalesce-writes';
import { brokerAddresses, formatAddress } from './hosts';
import { NodeRotation } from './node-rotation';
import { Unconfirmed } from './unconfirmed';
import { TlsMaterial, tlsRefusalKey } from '../../lib/tls-files';

export interface RabbitBrokerOptions {
  /** Shown in the management UI's connection list. */
  connectionName: string;
  /** How long a publish waits for the broker's confirm. */
  publishTimeoutMs: number;
  logger: Logger;
  /** With `manager.message_queue.tls` on: its files, read at each connection (a renewed certificate is used from the next). */
  tls?: () => TlsMaterial;
}

interface ConsumerSpec {
  decl: QueueDecl;
  prefetch: number;
  handler: MessageHandler;
  onStarted: (() => void) | undefined;
  channel: Channel | null;
  tag: string | null;
  /** The connection this consumer was started (or is being started) on: at most one start per connection. */
  startedOn: ChannelModel | null;
}

const MAX_BACKOFF_MS = 15_000;
/** Pause before trying the next node of a round: another node is likely up. */
const NEXT_NODE_DELAY_MS = 100;
/** Pause before consuming again after the broker cancelled a consumer (its queue was moving or went away). */
const RECONSUME_DELAY_MS = 500;

function publishOptions(m: OutgoingMessage, user: string): Options.Publish {
  return {
    persistent: m.persistent,
    contentType: CONTENT_TYPE,
    messageId: m.messageId,
    type: m.type,
    headers: m.headers,
    userId: m.stampUser ? user : undefined,
    expiration: m.expirationMs === undefined ? undefined : String(Math.max(1, Math.round(m.expirationMs))),
    mandatory: m.mandatory,
    BCC: m.bcc?.length ? m.bcc : undefined,
  };
}

/**
 * RabbitMQ through amqplib: one long-lived connection with a confirm channel for publishing (and
 * declaring exchanges), a channel for declaring queues, another for requests and replies (direct
 * reply-to), and one channel per consumer. A lost connection or channel but the declaring one (including
 * a forced close, which emits `close` without `error`) tears the connection down and reconnects, to the
 * next node of the cluster when several are configured, with backoff once every node failed;
 * declarations are repeated and consumers re-established on the new connection. Publishes waiting for a confirm fail at once when the
 * connection is lost or the broker blocks publishers.
 */
/** Queues a message may reach within one `publishTimeoutMs`; the wait for its confirm grows by as much per as many more. */
const COPIES_PER_PUBLISH_TIMEOUT = 1000;
/** The longest wait for one publish's confirm, however many queues it reaches. */
export const MAX_CONFIRM_WAIT_MS = 60_000;

/**
 * How long a publish waits for its confirm: `publishTimeoutMs` per 1,000 queues it reaches (RabbitMQ confirms
 * a persistent message once every queue wrote it; a broadcast to 10,000 took more than 5 s on 2 cores), at
 * least `publishTimeoutMs`, at most a minute.
 */
export function confirmWaitMs(publishTimeoutMs: number, copies: number): number {
  const scaled = publishTimeoutMs * Math.ceil(Math.max(copies, 1) / COPIES_PER_PUBLISH_TIMEOUT);
  return Math.max(publishTimeoutMs, Math.min(scaled, MAX_CONFIRM_WAIT_MS));
}

export class RabbitBroker implements Broker {
  readonly durable = true;
  private conn: ChannelModel | null = null;
  private pub: ConfirmChannel | null = null;
  /**
   * Requests and replies. In confirm mode, so that a request the broker could not enqueue (a quorum queue
   * between leaders drops unconfirmed messages) fails at once instead of at the reply deadline.
   */
  private rpc: ConfirmChannel | null = null;
  /** The connection whose `rpc` channel consumes replies, and the start of that consumer. */
  private replyConsumer: { conn: ChannelModel; started: Promise<void> } | null = null;
  private readonly replies = new PendingReplies();
  private readonly setups: ((declare: Declarer) => Promise<void>)[] = [];
  private readonly declared = new Map<string, Promise<void>>();
  /**
   * The channel for queue declarations and passive checks, apart from the publishing one: a refusal (406
   * for a queue's arguments, 404 for a missing queue) closes the channel it came on, and here that costs a
   * new channel rather than the connection.
   */
  private declaring: { conn: ChannelModel; ch: Channel } | null = null;
  /** Operations on that channel run one at a time: a refusal closes the channel under every operation queued on it. */
  private declarationTail: Promise<unknown> = Promise.resolve();
  /** Queues found with the arguments of an older version, each logged once. */
  private readonly legacyQueues = new Set<string>();
  private readonly consumers: ConsumerSpec[] = [];
  /** Channels that are gone; an ack on them would throw, and the broker has requeued their deliveries. */
  private readonly deadChannels = new WeakSet<Channel>();
  /** Message ids of mandatory publishes the broker returned as unroutable (the return comes before the confirm). */
  private readonly returned = new Set<string>();
  private consuming = true;
  private closing = false;
  private readonly nodes: NodeRotation;
  private readonly unconfirmed = new Unconfirmed();
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** Connections the broker blocks, with its reason: a block may come before the connection is in use. */
  private readonly blocked = new WeakMap<ChannelModel, string>();
  private writeBlocked = false;
  private drainWaiters: (() => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly mq: MessageQueueConfig, private readonly options: RabbitBrokerOptions) {
    this.log = options.logger.child({ component: 'rabbitmq' });
    this.nodes = new NodeRotation(brokerAddresses(mq));
  }

  get user(): string {
    return this.mq.username;
  }

  get connected(): boolean {
    return this.pub !== null;
  }

  onConnect(setup: (declare: Declarer) => Promise<void>): void {
    this.setups.push(setup);
  }

  /**
   * Tries once; if the broker is away, keeps trying in the background and resolves anyway. A TLS refusal (the
   * broker's certificate, its name, or ours) is not something time mends: it fails the start, naming the key.
   */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      const key = this.options.tls ? tlsRefusalKey(err, 'manager.message_queue.tls') : null;
      if (key) throw new Error(`TLS to RabbitMQ at ${formatAddress(this.nodes.current)} failed: ${(err as Error).message}; check ${key}`, { cause: err });
      const node = formatAddress(this.nodes.current);
      const round = this.nodes.failed();
      this.log.warn({ err, node, next: formatAddress(this.nodes.current) }, 'broker unavailable, retrying in the background');
      this.scheduleReconnect(round);
    }
  }

  /** The socket options of an amqps connection: the files, and what to check of the broker's certificate. */
  private tlsOptions(): Record<string, unknown> {
    if (!this.options.tls) return {};
    const { servername, verify } = this.mq.tls;
    return {
      ...this.options.tls(),
      ...servername !== '' ? { servername } : {},
      rejectUnauthorized: verify,
      ...verify ? {} : { checkServerIdentity: () => undefined },
    };
  }

  private async connect(): Promise<void> {
    const { username, password, virtual_host, heartbeat } = this.mq;
    const { host, port } = this.nodes.current;
    const conn = await amqp.connect(
      { protocol: this.options.tls ? 'amqps' : 'amqp', hostname: host, port, username, password, vhost: virtual_host, heartbeat },
      { clientProperties: { connection_name: this.options.connectionName }, timeout: 10_000, noDelay: true, ...this.tlsOptions() },
    );
    if (!coalesceWrites(conn)) this.log.debug('amqplib socket not reachable; frames are written one by one');
    conn.on('error', (err: Error) => this.log.warn({ err }, 'connection error'));
    conn.on('close', () => this.onConnectionLost(conn));
    // A memory or disk alarm: publishes would wait for the alarm to clear, so they fail at once instead,
    // those waiting for a confirm or for the socket to drain included.
    conn.on('blocked', (reason: string) => {
      this.blocked.set(conn, reason);
      this.log.warn({ reason, unconfirmed: this.unconfirmed.size }, 'broker blocked publishing');
      if (conn !== this.conn) return;
      this.unconfirmed.failAll(() => this.blockedError(reason));
      this.wakeDrainWaiters();
    });
    conn.on('unblocked', () => {
      this.blocked.delete(conn);
      this.log.info('broker unblocked publishing');
    });
    try {
      const pub = await conn.createConfirmChannel();
      this.watchChannel(pub, conn, 'publish');
      pub.on('drain', () => this.unblockWrites());
      pub.on('return', (msg: ConsumeMessage) => {
        const id = msg.properties.messageId as string | undefined;
        if (id !== undefined) this.returned.add(id);
      });
      const rpc = await conn.createConfirmChannel();
      this.watchChannel(rpc, conn, 'requests');
      rpc.on('return', () => undefined);
      this.conn = conn;
      this.pub = pub;
      this.rpc = rpc;
      this.declared.clear();
      const declarer: Declarer = {
        exchange: async (name, type) => { await pub.assertExchange(name, type, { durable: true }); },
        queue: async (decl) => { await this.assertQueue(conn, decl); },
      };
      for (const setup of this.setups) await setup(declarer);
      if (this.consuming) for (const spec of this.consumers) await this.startConsumer(spec);
    } catch (err) {
      this.conn = null;
      this.pub = null;
      this.rpc = null;
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.nodes.connected();
    this.log.info({ node: formatAddress(this.nodes.current), nodes: this.nodes.size, vhost: virtual_host, user: username }, 'connected');
  }

  private blockedError(reason: string): BrokerUnavailableError {
    return new BrokerUnavailableError(`the broker is blocking publishers (${reason})`);
  }

  private watchChannel(ch: Channel, conn: ChannelModel, role: string): void {
    ch.on('error', (err: Error) => this.log.warn({ role, err }, 'channel error'));
    ch.on('close', () => {
      this.deadChannels.add(ch);
      // A channel closed by the broker (a refused declaration, a deleted queue, a missing exchange) takes
      // the whole connection down, so that everything is declared again from a known state.
      if (!this.closing && conn === this.conn) {
        this.log.warn({ role }, 'channel closed unexpectedly, reconnecting');
        conn.close().catch(() => undefined);
      }
    });
  }

  private onConnectionLost(conn: ChannelModel): void {
    if (conn !== this.conn && this.conn !== null) return;
    const wasConnected = this.conn === conn;
    this.conn = null;
    this.pub = null;
    this.rpc = null;
    this.replyConsumer = null;
    this.declaring = null;
    this.returned.clear();
    // Their confirms can never arrive: the task stays CREATED and the resend job sends it (the endpoints skip a repeat).
    this.unconfirmed.failAll(() => new BrokerUnavailableError('connection lost before the broker confirmed the publish'));
    for (const spec of this.consumers) {
      spec.channel = null;
      spec.tag = null;
      spec.startedOn = null;
    }
    this.replies.failAll('connection lost before the reply');
    this.unblockWrites();
    if (this.closing) return;
    if (wasConnected) {
      const node = formatAddress(this.nodes.current);
      this.nodes.lost();
      this.log.warn({ node, next: formatAddress(this.nodes.current) }, 'connection lost, reconnecting');
    }
    this.scheduleReconnect();
  }

  /** Right away to another node while a round lasts; with growing backoff once every node failed. */
  private scheduleReconnect(roundFailed = true): void {
    if (this.closing || this.reconnectTimer) return;
    let delay = NEXT_NODE_DELAY_MS;
    if (roundFailed) {
      delay = backoffDelay(this.nodes.backoffRound, 250, MAX_BACKOFF_MS, 'half');
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      const node = formatAddress(this.nodes.current);
      this.connect().catch((err: unknown) => {
        const round = this.nodes.failed();
        this.log.warn({ err, node, next: formatAddress(this.nodes.current), rounds: this.nodes.backoffRound }, 'reconnect failed');
        this.scheduleReconnect(round);
      });
    }, delay);
  }

  /** The declaration channel of `conn`, opened again if a refusal closed it. Called by one operation at a time. */
  private async declarationChannel(conn: ChannelModel): Promise<Channel> {
    if (this.declaring?.conn === conn && !this.deadChannels.has(this.declaring.ch)) return this.declaring.ch;
    const ch = await conn.createChannel();
    ch.on('error', (err: Error) => this.log.debug({ err }, 'declaration refused by the broker'));
    ch.on('close', () => this.deadChannels.add(ch));
    this.declaring = { conn, ch };
    return ch;
  }

  /** Runs `op` with the declaration channel of `conn`, once every operation before it has settled. */
  private onDeclarationChannel<T>(conn: ChannelModel, op: (channel: () => Promise<Channel>) => Promise<T>): Promise<T> {
    const run = this.declarationTail.then(() => op(() => this.declarationChannel(conn)));
    this.declarationTail = run.catch(() => undefined);
    return run;
  }

  /**
   * Declares and binds the queue; returns its name (the broker's choice for an exclusive one). A queue
   * that RabbitMQ finds inequivalent (406) and that has `legacyArguments` is declared with those on a new
   * channel: a queue keeps the arguments it was created with, those of an older version included.
   */
  private assertQueue(conn: ChannelModel, decl: QueueDecl): Promise<string> {
    return this.onDeclarationChannel(conn, async (channel) => {
      let queue = decl.name;
      if (decl.exclusive) {
        ({ queue } = await (await channel()).assertQueue('', { exclusive: true, autoDelete: true, durable: false, arguments: decl.arguments }));
      } else {
        try {
          await (await channel()).assertQueue(decl.name, { durable: true, arguments: decl.arguments });
        } catch (err) {
          if (!decl.legacyArguments || (err as { code?: unknown }).code !== 406) throw err;
          await (await channel()).assertQueue(decl.name, { durable: true, arguments: decl.legacyArguments }).catch(() => { throw err; });
          this.foundLegacyQueue(decl.name, decl.arguments, decl.legacyArguments);
        }
      }
      for (const b of decl.bindings) await (await channel()).bindQueue(queue, b.exchange, b.key);
      return queue;
    });
  }

  /** Once per queue and process: the first at warn with what to do about it, the others at info. */
  private foundLegacyQueue(queue: string, current: Record<string, unknown>, legacy: Record<string, unknown>): void {
    if (this.legacyQueues.has(queue)) return;
    this.legacyQueues.add(queue);
    const fields = { queue, arguments: legacy, currentArguments: current };
    if (this.legacyQueues.size === 1) {
      this.log.warn(fields, 'queue declared with the arguments an older version created it with; it works as before. '
        + 'To give it this version\'s arguments, delete it once it is empty and nothing is sent to it: it is declared anew '
        + '(README, "Upgrading"). Further such queues of this process are logged at info');
    } else {
      this.log.info(fields, 'queue declared with the arguments an older version created it with');
    }
  }

  declareQueue(decl: QueueDecl): Promise<void> {
    const conn = this.conn;
    if (!conn) return Promise.reject(new BrokerUnavailableError());
    let pending = this.declared.get(decl.name);
    if (!pending) {
      pending = this.assertQueue(conn, decl).then(() => undefined, (err: unknown) => {
        this.declared.delete(decl.name);
        throw new BrokerUnavailableError(`could not declare queue ${decl.name}`, { cause: err });
      });
      this.declared.set(decl.name, pending);
    }
    return pending;
  }

  async deleteQueue(name: string): Promise<void> {
    this.declared.delete(name);
    const conn = this.conn;
    if (!conn) throw new BrokerUnavailableError();
    // A channel of its own: a refused delete closes its channel, which must not be the publishers'.
    const ch = await conn.createChannel().catch((err: unknown) => { throw new BrokerUnavailableError(`could not delete queue ${name}`, { cause: err }); });
    ch.on('error', () => undefined);
    try {
      await ch.deleteQueue(name);
    } catch (err) {
      throw new BrokerUnavailableError(`could not delete queue ${name}`, { cause: err });
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  private unblockWrites(): void {
    this.writeBlocked = false;
    this.wakeDrainWaiters();
  }

  /** Publishes waiting for `drain` look again (at a block, a lost connection, or the drain itself). */
  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  async publish(exchange: string, routingKey: string, message: OutgoingMessage): Promise<void> {
    // amqplib buffers without bound while the socket is full: wait for `drain` instead.
    for (;;) {
      const blocked = this.conn ? this.blocked.get(this.conn) : undefined;
      if (blocked !== undefined) throw this.blockedError(blocked);
      if (!this.writeBlocked) break;
      await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
    const ch = this.pub;
    if (!ch) throw new BrokerUnavailableError();
    if (message.mandatory && message.messageId === undefined) throw new Error('a mandatory publish needs a messageId');
    const confirmMs = confirmWaitMs(this.options.publishTimeoutMs, message.copies ?? 1);
    await new Promise<void>((resolve, reject) => {
      const forget = this.unconfirmed.add(reject);
      const timer = setTimeout(() => {
        forget();
        reject(new BrokerUnavailableError(`publish not confirmed within ${confirmMs} ms`));
      }, confirmMs);
      try {
        const ok = ch.publish(exchange, routingKey, message.body, publishOptions(message, this.user), (err: unknown) => {
          clearTimeout(timer);
          forget();
          const id = message.messageId;
          if (message.mandatory && id !== undefined && this.returned.delete(id)) {
            reject(new BrokerUnavailableError(`message ${id} reached no queue (${exchange || 'default exchange'}, ${routingKey})`));
          } else if (err) {
            reject(new BrokerUnavailableError('publish rejected by the broker', { cause: err }));
          } else {
            resolve();
          }
        });
        if (!ok) this.writeBlocked = true;
      } catch (err) {
        clearTimeout(timer);
        forget();
        reject(new BrokerUnavailableError('publish failed', { cause: err }));
      }
    });
  }

  /** Messages ready in a queue, by a passive declaration (which fails for a queue that does not exist). */
  queueDepth(name: string): Promise<number> {
    const conn = this.conn;
    if (!conn) return Promise.reject(new BrokerUnavailableError());
    return this.onDeclarationChannel(conn, async (channel) => (await (await channel()).checkQueue(name)).messageCount);
  }

  /** The `rpc` channel of the current connection, consuming replies (started once per connection). */
  private async replyChannel(): Promise<ConfirmChannel> {
    const conn = this.conn;
    const ch = this.rpc;
    if (!conn || !ch) throw new BrokerUnavailableError();
    if (this.replyConsumer?.conn !== conn) {
      const started = ch.consume(REPLY_TO, (msg) => {
        if (msg) this.replies.resolve(msg.properties.correlationId as string | undefined, msg.content);
      }, { noAck: true }).then(() => undefined);
      this.replyConsumer = { conn, started };
      started.catch(() => { if (this.replyConsumer?.started === started) this.replyConsumer = null; });
    }
    await this.replyConsumer.started;
    return ch;
  }

  async request(exchange: string, routingKey: string, message: OutgoingMessage, timeoutMs: number): Promise<Buffer> {
    const ch = await this.replyChannel();
    const correlationId = randomUUID();
    return this.replies.wait(correlationId, timeoutMs, () => {
      ch.publish(exchange, routingKey, message.body, { ...publishOptions(message, this.user), replyTo: REPLY_TO, correlationId }, (err: unknown) => {
        if (err) this.replies.fail(correlationId, new BrokerUnavailableError('request not taken by the broker', { cause: err }));
      });
    });
  }

  reply(request: IncomingMessage, body: Buffer): void {
    if (!request.replyTo || !this.rpc) return;
    try {
      this.rpc.publish('', request.replyTo, body, { contentType: CONTENT_TYPE, correlationId: request.correlationId });
    } catch (err) {
      this.log.debug({ err }, 'reply not sent');
    }
  }

  async consume(decl: QueueDecl, prefetch: number, handler: MessageHandler, onStarted?: () => void): Promise<void> {
    const spec: ConsumerSpec = { decl, prefetch, handler, onStarted, channel: null, tag: null, startedOn: null };
    this.consumers.push(spec);
    const conn = this.conn;
    if (!conn || !this.consuming) return;
    try {
      await this.startConsumer(spec);
    } catch (err) {
      // From a known state: the reconnect declares everything again and starts every consumer.
      this.log.warn({ queue: decl.name, err }, 'could not start consuming; trying again after reconnecting');
      if (conn === this.conn) await conn.close().catch(() => undefined);
    }
  }

  private async startConsumer(spec: ConsumerSpec): Promise<void> {
    const conn = this.conn;
    if (!conn) throw new BrokerUnavailableError();
    // consume() while connect() is starting every consumer would otherwise start this one twice.
    if (spec.startedOn === conn) return;
    spec.startedOn = conn;
    const ch = await conn.createChannel();
    this.watchChannel(ch, conn, `consume ${spec.decl.name}`);
    await ch.prefetch(spec.prefetch);
    spec.channel = ch;
    await this.subscribe(spec, ch, conn);
  }

  /** Declares the queue and consumes it on `ch`; again on the same channel if the broker cancels the consumer. */
  private async subscribe(spec: ConsumerSpec, ch: Channel, conn: ChannelModel): Promise<void> {
    const queue = await this.assertQueue(conn, spec.decl);
    const { consumerTag } = await ch.consume(queue, (msg) => {
      if (msg === null) {
        this.onCancelled(spec, ch, conn, queue);
        return;
      }
      spec.handler(this.incoming(ch, msg));
    }, { noAck: false });
    spec.tag = consumerTag;
    this.log.info({ queue }, 'consuming');
    spec.onStarted?.();
  }

  /**
   * The broker cancelled the consumer: its queue was deleted, or (in a cluster) the queue's node went away.
   * Deliveries in hand stay valid on the channel, so only the consumer is started again, after a pause;
   * if the queue cannot be declared now, the refused channel takes the connection down and the reconnect
   * starts every consumer.
   */
  private onCancelled(spec: ConsumerSpec, ch: Channel, conn: ChannelModel, queue: string): void {
    spec.tag = null;
    this.log.warn({ queue }, 'consumer cancelled by the broker; consuming again');
    setTimeout(() => {
      if (this.closing || !this.consuming || conn !== this.conn || this.deadChannels.has(ch) || spec.channel !== ch) return;
      this.subscribe(spec, ch, conn).catch((err: unknown) => {
        this.log.warn({ queue, err }, 'could not consume again; reconnecting');
        conn.close().catch(() => undefined);
      });
    }, RECONSUME_DELAY_MS);
  }

  private incoming(ch: Channel, msg: ConsumeMessage): IncomingMessage {
    let settled = false;
    const settle = (action: string, fn: () => void): void => {
      if (settled) return;
      settled = true;
      if (this.deadChannels.has(ch)) {
        this.log.debug({ action, messageId: msg.properties.messageId }, 'channel gone before settling; the broker redelivers');
        return;
      }
      try {
        fn();
      } catch (err) {
        this.log.warn({ action, err }, 'could not settle a delivery');
      }
    };
    const p = msg.properties;
    return {
      body: msg.content,
      contentType: p.contentType as string | undefined,
      redelivered: msg.fields.redelivered,
      headers: (p.headers ?? {}) as Record<string, unknown>,
      userId: p.userId as string | undefined,
      replyTo: p.replyTo as string | undefined,
      correlationId: p.correlationId as string | undefined,
      ack: () => settle('ack', () => ch.ack(msg)),
      deadLetter: () => settle('dead-letter', () => ch.nack(msg, false, false)),
      release: () => settle('release', () => ch.nack(msg, false, true)),
    };
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
    this.rpc = null;
    this.replies.failAll('closing');
    this.unblockWrites();
    if (conn) await conn.close().catch(() => undefined);
  }
}
