import type { MessageQueueConfig } from '../config/schema';

/**
 * Names and arguments of everything declared on the broker. The API and the managers both declare
 * endpoint queues, so they must agree on the arguments exactly or RabbitMQ refuses the second one.
 */
export function exchangeName(prefix: string, taskType: string): string {
  return `${prefix}.${taskType}`;
}

export function queueName(prefix: string, taskType: string, endpoint: string): string {
  return `${prefix}.${taskType}.${endpoint}`;
}

/** Where rejected messages go: invalid ones and those whose handler exhausted its attempts. */
export function deadLetterName(prefix: string): string {
  return `${prefix}.dead-letter`;
}

export function queueArguments(mq: MessageQueueConfig): Record<string, unknown> {
  return { 'x-dead-letter-exchange': deadLetterName(mq.exchange), 'x-queue-type': mq.queue_type };
}
