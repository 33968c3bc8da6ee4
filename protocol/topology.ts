import { ENDPOINT_PATTERN, RESERVED_TASK_TYPES, TASK_TYPE_PATTERN } from './names';

/**
 * Names and arguments of everything on the broker. The API and the managers both declare endpoint
 * queues, so they must agree on the arguments exactly or RabbitMQ refuses the second declaration.
 * Where refused messages go is not an argument but a policy (see `deadLetterExchangePolicy`): RabbitMQ
 * requires write permission on the dead-letter exchange of whoever declares a queue naming it, which an
 * endpoint's user would then need, and could use to publish there at will.
 *
 * - `<prefix>.<task_type>`: fanout exchange, the broadcasts of a task type;
 * - `<prefix>.<task_type>.<endpoint>`: an endpoint's queue for a type, bound to that fanout; targeted
 *   sends reach it through the default exchange (its name as routing key, the other targets as `BCC`);
 * - `<prefix>.responses`: direct exchange to the server side: key `event` → queue `<prefix>.responses`
 *   (receipts, results, registrations, heartbeats), key `state` → queue `<prefix>.state` (state requests);
 * - `<prefix>.dead-letter`: fanout exchange and queue for messages that are refused;
 * - `<prefix>.control`: fanout exchange to every endpoint manager (cancels), each with an exclusive queue;
 * - `<prefix>.notify`: fanout exchange between the API processes (a task's history moved), each with an
 *   exclusive queue.
 */
export type QueueType = 'classic' | 'quorum';

export const EVENT_KEY = 'event';
export const STATE_KEY = 'state';
/** RabbitMQ's direct reply-to pseudo-queue. */
export const REPLY_TO = 'amq.rabbitmq.reply-to';

/**
 * Bounds of the dead-letter queue, set by `initialize` as a policy (queue arguments cannot change on an
 * existing queue without breaking its redeclaration). Past them the oldest messages go (`drop-head`):
 * a peer that floods it loses its own evidence, not the broker its memory.
 */
export const DEAD_LETTER_MAX_LENGTH = 10_000;
export const DEAD_LETTER_MAX_BYTES = 256 * 1024 * 1024;

/** A RabbitMQ policy, as the management API takes it (`PUT /api/policies/<vhost>/<name>`). */
export interface Policy {
  pattern: string;
  'apply-to': 'queues';
  /** A queue takes the one matching policy of the highest priority: tasker's patterns never overlap. */
  priority: number;
  definition: Record<string, unknown>;
}

export interface QueueDecl {
  /** Empty for an exclusive queue: the broker names it. */
  name: string;
  arguments: Record<string, unknown>;
  /**
   * The arguments an older version declared this queue with. A queue's arguments never change, so when
   * RabbitMQ refuses `arguments` as inequivalent (406), the queue is declared with these instead.
   */
  legacyArguments?: Record<string, unknown>;
  bindings: { exchange: string; key: string }[];
  /** Lives as long as the connection that declared it, which alone may consume it; not durable. */
  exclusive?: boolean;
}

export class Topology {
  constructor(readonly prefix: string, readonly queueType: QueueType) {}

  taskExchange(taskType: string): string {
    return `${this.prefix}.${taskType}`;
  }

  endpointQueueName(taskType: string, endpoint: string): string {
    return `${this.prefix}.${taskType}.${endpoint}`;
  }

  get responsesExchange(): string {
    return `${this.prefix}.responses`;
  }

  get deadLetter(): string {
    return `${this.prefix}.dead-letter`;
  }

  get deadLetterExchangePolicyName(): string {
    return `${this.prefix}.dead-letter-exchange`;
  }

  get deadLetterBoundsPolicyName(): string {
    return `${this.prefix}.dead-letter-bounds`;
  }

  /**
   * Arguments of the queues whose refused messages are dead-lettered (the endpoint queues, the responses
   * and the state queue); before the policy, they named the dead-letter exchange themselves.
   */
  private deadLetteringArguments(): Pick<QueueDecl, 'arguments' | 'legacyArguments'> {
    return { arguments: { 'x-queue-type': this.queueType }, legacyArguments: { 'x-dead-letter-exchange': this.deadLetter, 'x-queue-type': this.queueType } };
  }

  endpointQueue(taskType: string, endpoint: string): QueueDecl {
    return {
      ...this.deadLetteringArguments(),
      name: this.endpointQueueName(taskType, endpoint),
      bindings: [{ exchange: this.taskExchange(taskType), key: '' }],
    };
  }

  get eventsQueue(): QueueDecl {
    return { ...this.deadLetteringArguments(), name: `${this.prefix}.responses`, bindings: [{ exchange: this.responsesExchange, key: EVENT_KEY }] };
  }

  get stateQueue(): QueueDecl {
    return { ...this.deadLetteringArguments(), name: `${this.prefix}.state`, bindings: [{ exchange: this.responsesExchange, key: STATE_KEY }] };
  }

  get controlExchange(): string {
    return `${this.prefix}.control`;
  }

  get notifyExchange(): string {
    return `${this.prefix}.notify`;
  }

  /** A manager connection's own queue of control messages. */
  get controlQueue(): QueueDecl {
    return { name: '', arguments: {}, bindings: [{ exchange: this.controlExchange, key: '' }], exclusive: true };
  }

  /** An API process's own queue of notices. */
  get notifyQueue(): QueueDecl {
    return { name: '', arguments: {}, bindings: [{ exchange: this.notifyExchange, key: '' }], exclusive: true };
  }

  get deadLetterQueue(): QueueDecl {
    return { name: this.deadLetter, arguments: { 'x-queue-type': this.queueType }, bindings: [{ exchange: this.deadLetter, key: '' }] };
  }

  /** The policy that bounds the dead-letter queue (and only it). */
  get deadLetterBoundsPolicy(): Policy {
    return {
      pattern: `^${escapeRegExp(this.deadLetter)}$`, 'apply-to': 'queues', priority: 10,
      definition: { 'max-length': DEAD_LETTER_MAX_LENGTH, 'max-length-bytes': DEAD_LETTER_MAX_BYTES, overflow: 'drop-head' },
    };
  }

  /**
   * The policy that dead-letters the refused messages of the endpoint queues, the responses queue and
   * the state queue into the dead-letter exchange. Its pattern leaves out the dead-letter queue (which
   * has its own policy, and must not dead-letter into itself) and the exclusive queues, so no queue
   * matches both of tasker's policies and neither shadows the other.
   */
  get deadLetterExchangePolicy(): Policy {
    const prefix = escapeRegExp(this.prefix);
    return {
      pattern: `^${prefix}\\.(responses|state|${this.typeFragment()}\\.${ENDPOINT_PATTERN.source.replace(/^\^|\$$/g, '')})$`,
      'apply-to': 'queues', priority: 10,
      definition: { 'dead-letter-exchange': this.deadLetter },
    };
  }

  /** A task type in a queue or exchange name (a regular expression), the reserved names excepted. */
  private typeFragment(): string {
    const reserved = RESERVED_TASK_TYPES.map((t) => `${escapeRegExp(t)}$`).join('|');
    return `(?!${reserved})${TASK_TYPE_PATTERN.source.replace(/^\^|\$$/g, '')}`;
  }

  /**
   * RabbitMQ permissions (regular expressions) of a per-endpoint user: configure and read its own queues,
   * read the task type exchanges (to bind its queues to them), write its own queues (binding) and the
   * responses exchange, read the control exchange, and use an exclusive queue that the broker names
   * (`amq.gen-…`, which no other connection may touch) to receive control messages. It cannot read
   * another endpoint's queue or the responses, publish a task or a dead letter, or change an exchange.
   * (Its queues dead-letter by policy, so declaring them needs no permission on the dead-letter
   * exchange; one that an older version declared with the argument is only redeclared, which RabbitMQ
   * does not check against the dead-letter exchange.)
   */
  endpointPermissions(endpoint: string): { configure: string; write: string; read: string } {
    const prefix = escapeRegExp(this.prefix);
    const type = this.typeFragment();
    const own = `${prefix}\\.${type}\\.${escapeRegExp(endpoint)}`;
    const exclusive = 'amq\\.gen-[A-Za-z0-9_-]+';
    return {
      configure: `^(${own}|${exclusive})$`,
      write: `^(${prefix}\\.responses|${own}|${exclusive})$`,
      read: `^(${own}|${prefix}\\.${type}|${prefix}\\.control|${exclusive})$`,
    };
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
