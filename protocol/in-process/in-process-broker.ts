import { randomUUID } from 'node:crypto';
import { BrokerUnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import type { Broker, Declarer, ExchangeType, IncomingMessage, MessageHandler, OutgoingMessage, Reservation } from '../broker';
import { PendingReplies } from '../pending-replies';
import { Policy, QueueDecl, REPLY_TO } from '../topology';
import { CONTENT_TYPE } from '../wire';
import { Reservations } from './reservations';

interface Stored {
  body: Buffer;
  headers: Record<string, unknown>;
  userId: string | undefined;
  replyTo: string | undefined;
  correlationId: string | undefined;
  redelivered: boolean;
}

interface Consumer {
  conn: InProcessConnection;
  prefetch: number;
  handler: MessageHandler;
  /** Delivered and not settled yet: handed back when the connection closes, as RabbitMQ does. */
  unacked: Set<Stored>;
}

interface Queue {
  decl: QueueDecl;
  /** The connection an exclusive queue belongs to. */
  owner: InProcessConnection | null;
  messages: Stored[];
  consumers: Consumer[];
  scheduled: boolean;
}

interface Exchange {
  type: ExchangeType;
  bindings: Map<string, Set<Queue>>;
}

/** Most messages kept in a queue that receives dead letters: nothing reads them in the standalone mode. */
const DEAD_LETTER_LIMIT = 1000;

/**
 * The broker of the standalone mode, inside the one process: exchanges (fanout, direct and the default
 * exchange, with BCC), queues that keep messages for an endpoint that is not consuming, at most
 * `prefetch` unacknowledged deliveries per consumer, released deliveries handed out again as
 * redelivered, dead-lettering, `user_id` stamping and request/reply. Messages are encoded as on the
 * wire, so both sides run exactly the code they run against RabbitMQ. Nothing survives the process: on
 * start the API sends again what is unfinished (`durable` is false).
 *
 * Every queue holds at most `limit` ready messages: a publish that would take one past it is refused
 * whole, as RabbitMQ refuses one with `x-overflow: reject-publish`, and each publisher handles that as
 * the unconfirmed publish it is (a task is left to the resend job, a manager publishes its result again
 * later). `reserve` lets the API refuse a task before storing it instead. Messages handed back (released,
 * or a closed connection's) and the start's redelivery are never refused: they were admitted before.
 */
export class InProcessBroker {
  private readonly exchanges = new Map<string, Exchange>([['', { type: 'direct', bindings: new Map() }]]);
  private readonly queues = new Map<string, Queue>();
  private readonly replyRoutes = new Map<string, InProcessConnection>();

  private readonly reservations = new Reservations();
  private readonly policies: Policy[] = [];

  constructor(readonly log: Logger, readonly limit = Number.POSITIVE_INFINITY) {}

  /**
   * A policy, as `initialize` sets them on RabbitMQ; of its keys only `dead-letter-exchange` is honoured.
   * As in RabbitMQ it applies to the queues whose names match, those declared before it included.
   */
  setPolicy(policy: Policy): void {
    this.policies.push({ ...policy });
  }

  /** As RabbitMQ decides: the queue's argument, else that of the one matching policy of the highest priority. */
  private deadLetterExchangeOf(q: Queue): string | undefined {
    const arg = q.decl.arguments['x-dead-letter-exchange'];
    if (typeof arg === 'string') return arg;
    let chosen: Policy | undefined;
    for (const p of this.policies) {
      if (new RegExp(p.pattern).test(q.decl.name) && (!chosen || p.priority > chosen.priority)) chosen = p;
    }
    const dlx = chosen?.definition['dead-letter-exchange'];
    return typeof dlx === 'string' ? dlx : undefined;
  }

  /** A connection authenticated as `user`. */
  connect(user: string): Broker {
    const conn = new InProcessConnection(this, user);
    this.replyRoutes.set(conn.replyAddress, conn);
    return conn;
  }

  forget(conn: InProcessConnection): void {
    this.replyRoutes.delete(conn.replyAddress);
    for (const [name, q] of this.queues) {
      if (q.owner !== conn) continue;
      this.queues.delete(name);
      for (const x of this.exchanges.values()) for (const bound of x.bindings.values()) bound.delete(q);
    }
    for (const q of this.queues.values()) {
      const mine = q.consumers.filter((c) => c.conn === conn);
      if (mine.length === 0) continue;
      q.consumers = q.consumers.filter((c) => c.conn !== conn);
      for (const c of mine) q.messages.unshift(...[...c.unacked].map((m) => ({ ...m, redelivered: true })));
      this.schedule(q);
    }
  }

  declareExchange(name: string, type: ExchangeType): void {
    if (!this.exchanges.has(name)) this.exchanges.set(name, { type, bindings: new Map() });
  }

  declareQueue(decl: QueueDecl, owner: InProcessConnection | null = null): Queue {
    const name = decl.exclusive ? `amq.gen-${randomUUID()}` : decl.name;
    let q = this.queues.get(name);
    if (!q) {
      q = { decl: { ...decl, name }, owner: decl.exclusive ? owner : null, messages: [], consumers: [], scheduled: false };
      this.queues.set(name, q);
    }
    for (const b of decl.bindings) {
      const x = this.exchanges.get(b.exchange);
      if (!x) throw new BrokerUnavailableError(`no exchange '${b.exchange}' to bind ${name} to`);
      const bound = x.bindings.get(b.key) ?? new Set<Queue>();
      bound.add(q);
      x.bindings.set(b.key, bound);
    }
    return q;
  }

  /** Drops a queue, its messages and its bindings; its consumers receive nothing more. */
  deleteQueue(name: string): void {
    const q = this.queues.get(name);
    if (!q) return;
    this.queues.delete(name);
    for (const x of this.exchanges.values()) for (const bound of x.bindings.values()) bound.delete(q);
  }

  /** The queues a message published to `exchange` with these routing keys reaches. */
  private route(exchange: string, keys: string[]): Set<Queue> {
    const x = this.exchanges.get(exchange);
    if (!x) throw new BrokerUnavailableError(`no exchange '${exchange}'`);
    const out = new Set<Queue>();
    for (const key of keys) {
      if (exchange === '') {
        const q = this.queues.get(key);
        if (q) out.add(q);
      } else {
        const bound = x.type === 'fanout' ? [...x.bindings.values()].flatMap((s) => [...s]) : [...x.bindings.get(key) ?? []];
        for (const q of bound) out.add(q);
      }
    }
    return out;
  }

  publish(exchange: string, keys: string[], message: Stored): number {
    const targets = this.route(exchange, keys);
    if (!message.redelivered) {
      const full = [...targets].find((q) => q.messages.length >= this.limit);
      if (full) throw new BrokerUnavailableError(`in-process queue ${full.decl.name} is full (${this.limit} messages; manager.in_process_backlog)`);
    }
    for (const q of targets) {
      q.messages.push({ ...message });
      this.schedule(q);
    }
    return targets.size;
  }

  /** The queues a publish would reach, by name: those of the default exchange need not exist yet. */
  private targetNames(exchange: string, keys: readonly string[]): string[] {
    if (exchange === '') return [...new Set(keys)];
    return [...this.route(exchange, [...keys])].map((q) => q.decl.name);
  }

  reserve(exchange: string, keys: readonly string[]): Reservation | null {
    const names = this.targetNames(exchange, keys);
    const room = (name: string): boolean => (this.queues.get(name)?.messages.length ?? 0) + this.reservations.count(name) < this.limit;
    return names.every(room) ? this.reservations.hold(names) : null;
  }

  queueDepth(name: string): number {
    const q = this.queues.get(name);
    if (!q) throw new BrokerUnavailableError(`no in-process queue '${name}'`);
    return q.messages.length;
  }

  deliverReply(replyTo: string, correlationId: string | undefined, body: Buffer): void {
    const conn = this.replyRoutes.get(replyTo);
    if (conn && correlationId) setImmediate(() => conn.resolveReply(correlationId, body));
  }

  consume(decl: QueueDecl, consumer: Consumer): void {
    const q = this.declareQueue(decl, consumer.conn);
    q.consumers.push(consumer);
    this.schedule(q);
  }

  /** Deliveries are handed out from a later turn of the event loop, never inside the publisher's call. */
  schedule(q: Queue): void {
    if (q.scheduled || q.consumers.length === 0) return;
    q.scheduled = true;
    setImmediate(() => {
      q.scheduled = false;
      this.pump(q);
    });
  }

  private pump(q: Queue): void {
    for (;;) {
      const consumer = q.consumers.find((c) => c.conn.consuming && c.unacked.size < c.prefetch);
      if (!consumer || q.messages.length === 0) return;
      const item = q.messages.shift() as Stored;
      consumer.unacked.add(item);
      consumer.handler(this.incoming(q, consumer, item));
    }
  }

  private incoming(q: Queue, consumer: Consumer, item: Stored): IncomingMessage {
    let settled = false;
    const settle = (fn: () => void) => (): void => {
      if (settled) return;
      settled = true;
      // A connection that is gone has given its deliveries back already (see forget()).
      if (consumer.conn.closed) return;
      consumer.unacked.delete(item);
      fn();
      this.schedule(q);
    };
    return {
      body: item.body,
      contentType: CONTENT_TYPE,
      redelivered: item.redelivered,
      headers: item.headers,
      userId: item.userId,
      replyTo: item.replyTo,
      correlationId: item.correlationId,
      ack: settle(() => undefined),
      deadLetter: settle(() => this.deadLetter(q, item)),
      release: settle(() => q.messages.unshift({ ...item, redelivered: true })),
    };
  }

  private deadLetter(q: Queue, item: Stored): void {
    const dlx = this.deadLetterExchangeOf(q);
    if (dlx === undefined || !this.exchanges.has(dlx)) return;
    for (const target of this.route(dlx, [''])) {
      target.messages.push({ ...item, redelivered: false });
      if (target.messages.length > DEAD_LETTER_LIMIT) target.messages.shift();
    }
  }
}

class InProcessConnection implements Broker {
  readonly durable = false;
  readonly replyAddress = `${REPLY_TO}.${randomUUID()}`;
  consuming = true;
  closed = false;
  private started = false;
  private readonly setups: ((declare: Declarer) => Promise<void>)[] = [];
  private readonly replies = new PendingReplies();

  constructor(private readonly broker: InProcessBroker, readonly user: string) {}

  get connected(): boolean {
    return this.started && !this.closed;
  }

  onConnect(setup: (declare: Declarer) => Promise<void>): void {
    this.setups.push(setup);
  }

  async start(): Promise<void> {
    const declarer: Declarer = {
      exchange: async (name, type) => this.broker.declareExchange(name, type),
      queue: async (decl) => { this.broker.declareQueue(decl); },
    };
    for (const setup of this.setups) await setup(declarer);
    this.started = true;
  }

  private requireOpen(): void {
    if (this.closed) throw new BrokerUnavailableError('the in-process broker connection is closed');
  }

  async declareQueue(decl: QueueDecl): Promise<void> {
    this.requireOpen();
    this.broker.declareQueue(decl);
  }

  async deleteQueue(name: string): Promise<void> {
    this.requireOpen();
    this.broker.deleteQueue(name);
  }

  private stored(m: OutgoingMessage, extra: Partial<Stored> = {}): Stored {
    return {
      body: m.body, headers: m.headers ?? {}, userId: m.stampUser ? this.user : undefined,
      replyTo: undefined, correlationId: undefined, redelivered: m.redelivered === true, ...extra,
    };
  }

  async publish(exchange: string, routingKey: string, message: OutgoingMessage): Promise<void> {
    this.requireOpen();
    const reached = this.broker.publish(exchange, [routingKey, ...message.bcc ?? []], this.stored(message));
    if (message.mandatory && reached === 0) {
      throw new BrokerUnavailableError(`message ${message.messageId} reached no queue (${exchange || 'default exchange'}, ${routingKey})`);
    }
  }

  reserve(exchange: string, keys: readonly string[]): Reservation | null {
    this.requireOpen();
    return this.broker.reserve(exchange, keys);
  }

  async queueDepth(name: string): Promise<number> {
    this.requireOpen();
    return this.broker.queueDepth(name);
  }

  async consume(decl: QueueDecl, prefetch: number, handler: MessageHandler, onStarted?: () => void): Promise<void> {
    this.requireOpen();
    this.broker.consume(decl, { conn: this, prefetch, handler, unacked: new Set() });
    onStarted?.();
  }

  request(exchange: string, routingKey: string, message: OutgoingMessage, timeoutMs: number): Promise<Buffer> {
    this.requireOpen();
    const correlationId = randomUUID();
    return this.replies.wait(correlationId, timeoutMs, () => {
      this.broker.publish(exchange, [routingKey], this.stored(message, { replyTo: this.replyAddress, correlationId }));
    });
  }

  resolveReply(correlationId: string, body: Buffer): void {
    this.replies.resolve(correlationId, body);
  }

  reply(request: IncomingMessage, body: Buffer): void {
    if (request.replyTo) this.broker.deliverReply(request.replyTo, request.correlationId, body);
  }

  async stopConsuming(): Promise<void> {
    this.consuming = false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.consuming = false;
    this.closed = true;
    this.replies.failAll('closing');
    this.broker.forget(this);
  }
}
