import { randomUUID } from 'node:crypto';
import type { Broker, MessageHandler } from './broker';
import { EVENT_KEY, STATE_KEY, Topology } from './topology';
import { CancelledReply, decodeCancelledReply, decodeStateReply, encode, StateReply, StateRequest, WireEvent } from './wire';

/**
 * The endpoint side of the protocol: consumes the endpoint's task queues, publishes its response events
 * (with `user_id` set, so that the server side can trust who sent them) and asks the server side about
 * copies of tasks that may have run before. Talks to the broker only.
 */
export class EndpointTransport {
  constructor(readonly broker: Broker, private readonly topology: Topology, readonly endpoint: string) {}

  start(): Promise<void> {
    return this.broker.start();
  }

  get connected(): boolean {
    return this.broker.connected;
  }

  consumeTasks(taskType: string, prefetch: number, handler: MessageHandler): Promise<void> {
    return this.broker.consume(this.topology.endpointQueue(taskType, this.endpoint), prefetch, handler);
  }

  /**
   * Publishes events of this endpoint as one message; resolves once the broker confirmed it (it fails
   * if the message reached no queue). `expirationMs`: presence events that are worthless later.
   */
  publishEvents(events: WireEvent[], options: { persistent: boolean; expirationMs?: number } = { persistent: true }): Promise<void> {
    return this.broker.publish(this.topology.responsesExchange, EVENT_KEY, {
      body: encode(events.length === 1 ? events[0] : events),
      persistent: options.persistent,
      expirationMs: options.expirationMs,
      messageId: randomUUID(),
      type: 'event',
      stampUser: true,
      mandatory: true,
    });
  }

  /** Control messages to every manager; `onStarted` runs on each (re)connect once they are flowing. */
  consumeControl(handler: MessageHandler, onStarted: () => void): Promise<void> {
    return this.broker.consume(this.topology.controlQueue, 100, handler, onStarted);
  }

  /** The tasks cancelled for this endpoint, newest first. */
  async requestCancelled(timeoutMs: number): Promise<CancelledReply> {
    const body = await this.broker.request(this.topology.responsesExchange, STATE_KEY, {
      body: encode({ kind: 'cancelled', endpoint: this.endpoint }), persistent: false, type: 'cancelled', stampUser: true, expirationMs: timeoutMs,
    }, timeoutMs);
    return decodeCancelledReply(body);
  }

  /** Asks the server side; the request expires in the queue when no server side takes it within `timeoutMs`. */
  async requestState(request: StateRequest, timeoutMs: number): Promise<StateReply> {
    const body = await this.broker.request(this.topology.responsesExchange, STATE_KEY, {
      body: encode(request), persistent: false, type: 'state', stampUser: true, expirationMs: timeoutMs,
    }, timeoutMs);
    return decodeStateReply(body);
  }

  stopConsuming(): Promise<void> {
    return this.broker.stopConsuming();
  }

  close(): Promise<void> {
    return this.broker.close();
  }
}
