import type { DataSource } from 'typeorm';
import { Batcher } from '../lib/batcher';
import { InFlight } from '../lib/in-flight';
import type { Logger } from '../lib/logger';
import type { Metrics } from './metrics';
import type { IncomingMessage } from '../protocol/broker';
import type { ServerTransport } from '../protocol/server-transport';
import { decodeEvents, OutputEvent, PresenceEvent, ResponseEvent, WireEvent } from '../protocol/wire';
import type { Completion, EventOutcome } from './storage/completion';
import { clockOf } from './storage/database-clock';
import { isTransientDbError, transaction } from './storage/database';
import type { EndpointRegistry } from './storage/endpoint-registry';
import type { OutputStore } from './storage/output-store';
import type { Announce } from './storage/history';
import { OutageNotice, withDbRetry } from './storage/retry';
import { RefusalLog } from './refusal-log';
import { MAX_INBOUND_MESSAGE_BYTES } from './inbound-limit';

export type EndpointIdentity = 'shared_user' | 'per_endpoint_user';

export interface CollectorOptions {
  ds: DataSource;
  completion: Completion;
  registry: EndpointRegistry;
  /** Where runs' output lines go. */
  output: OutputStore;
  transport: ServerTransport;
  /** `per_endpoint_user`: an event's endpoint must be the message's `user_id`, which RabbitMQ validated. */
  identity: EndpointIdentity;
  /** Most events written in one transaction. */
  batchSize: number;
  /** Called with the history of each batch once it committed. */
  announce: Announce;
  logger: Logger;
  metrics: Metrics;
  /** The configured task types: the only ones an endpoint may register for. */
  taskTypes: readonly string[];
}

const isResponse = (e: WireEvent): e is ResponseEvent => e.kind === 'receipt' || e.kind === 'result';
const isOutput = (e: WireEvent): e is OutputEvent => e.kind === 'output';
const isPresence = (e: WireEvent): e is PresenceEvent => e.kind === 'register' || e.kind === 'heartbeat';

/**
 * When the endpoint made the event, for the collector's lag: a result's end, a heartbeat's sending. A
 * receipt goes out `manager.receipt_delay` after its start_time, which says nothing about its wait.
 */
function madeAt(e: WireEvent): number | null {
  if (e.kind === 'result') return Date.parse(e.end_time);
  if (e.kind === 'register' || e.kind === 'heartbeat') return Date.parse(e.time);
  return null;
}

/**
 * Collects the endpoints' events from the responses queue: competing consumers in every API process.
 * Events that arrive together are written in one transaction (responses, task counters, registry), and
 * each message is acked once its events are committed; while the database is away they wait unacked,
 * and the broker keeps the rest. A message that is not valid, or holds an event that is refused (an
 * endpoint writing for another, an endpoint the task does not expect, a task that does not exist), is
 * dead-lettered and logged; its valid events are stored.
 */
export class Collector {
  private readonly writer: Batcher<WireEvent, EventOutcome>;
  private readonly inFlight = new InFlight();
  private readonly log: Logger;
  /** One warning per database outage, not one per event held. */
  private readonly outage: OutageNotice;
  private stopping = false;
  private readonly refusals: RefusalLog;
  private readonly taskTypes: ReadonlySet<string>;

  constructor(private readonly o: CollectorOptions) {
    this.log = o.logger.child({ component: 'collector' });
    this.outage = new OutageNotice(this.log, 'store events');
    this.refusals = new RefusalLog(this.log, o.metrics);
    this.taskTypes = new Set(o.taskTypes);
    this.writer = new Batcher((events) => this.write(events), {
      maxBatch: o.batchSize, maxConcurrent: 2, split: (err) => !isTransientDbError(err),
    });
  }

  start(): Promise<void> {
    return this.o.transport.consumeEvents(this.o.batchSize, (m) => { void this.inFlight.track(this.handle(m)); });
  }

  /**
   * Two batches are written at once, so a run's result could commit before the output lines its endpoint
   * sent ahead of it, and a reader told the run ended would miss its last lines: a batch with a result waits
   * for the batches still writing output of that task, which started before it (batches start in order).
   */
  private readonly outputWrites = new Map<number, Promise<unknown>>();

  private write(events: WireEvent[]): Promise<EventOutcome[]> {
    const earlier = new Set(events.filter(isResponse).map((e) => this.outputWrites.get(e.task_id)).filter((p) => p !== undefined));
    const run = (async () => {
      if (earlier.size > 0) await Promise.allSettled(earlier);
      return this.writeBatch(events);
    })();
    const tasks = new Set(events.filter(isOutput).map((e) => e.task_id));
    for (const t of tasks) this.outputWrites.set(t, run);
    const forget = (): void => { for (const t of tasks) if (this.outputWrites.get(t) === run) this.outputWrites.delete(t); };
    run.then(forget, forget);
    return run;
  }

  private async writeBatch(events: WireEvent[]): Promise<EventOutcome[]> {
    const presence = events.filter(isPresence);
    const { outcomes, history, done, sends, outputOutcomes } = await transaction(this.o.ds, async (em) => {
      // The database's clock (a fresh estimate of it): every time this batch writes comes from it.
      const now = await clockOf(this.o.ds).now(em);
      const stored = await this.o.completion.applyEvents(em, events.filter(isResponse), now);
      await this.o.registry.record(em, presence, now);
      return { ...stored, outputOutcomes: await this.o.output.append(em, events.filter(isOutput)) };
    });
    // Before the announce: the metrics of the finished responses name only endpoints of the registry.
    if (presence.length > 0) this.o.metrics.knowEndpoints(presence.map((e) => e.endpoint));
    this.o.announce(history);
    // The next batches of rollouts, decided with these results.
    this.o.completion.dispatch(sends);
    const { metrics } = this.o;
    metrics.tasksDone(done);
    const made: number[] = [];
    let i = 0;
    let j = 0;
    const all = events.map((e) => {
      const outcome = isResponse(e) ? outcomes[i++] : isOutput(e) ? outputOutcomes[j++] : 'stored';
      metrics.collectedEvent(e.kind, outcome);
      const t = madeAt(e);
      if (t !== null && !Number.isNaN(t)) made.push(t);
      return outcome;
    });
    metrics.collectorBatch(events.length, made, Date.now());
    return all;
  }

  private async handle(m: IncomingMessage): Promise<void> {
    if (m.body.length > MAX_INBOUND_MESSAGE_BYTES) {
      // Not parsed: its JSON would take several times its size in memory.
      this.refusals.refused('too_large', m.userId, 'response message over the size limit dead-lettered unparsed', { bytes: m.body.length, limit: MAX_INBOUND_MESSAGE_BYTES });
      this.o.metrics.invalidMessage();
      m.deadLetter();
      return;
    }
    let events: WireEvent[];
    try {
      events = decodeEvents(m.body, m.contentType);
    } catch (err) {
      this.refusals.refused('invalid', m.userId, 'invalid response message dead-lettered', { err, body: m.body.subarray(0, 200).toString('utf8') });
      this.o.metrics.invalidMessage();
      m.deadLetter();
      return;
    }
    const refused: string[] = [];
    const accepted = events.filter((e) => {
      if (this.o.identity === 'per_endpoint_user' && e.endpoint !== m.userId) {
        this.refusals.refused('not_sender', m.userId, 'response event refused: its endpoint is not the sender', { kind: e.kind, endpoint: e.endpoint });
        refused.push(e.endpoint);
        this.o.metrics.collectedEvent(e.kind, 'refused');
        return false;
      }
      if (e.kind === 'register' || e.kind === 'heartbeat') return this.keepConfiguredTypes(e, m.userId, refused);
      return true;
    });
    let outcomes: EventOutcome[];
    try {
      outcomes = await Promise.all(accepted.map((e) =>
        withDbRetry(() => this.writer.submit(e), { what: 'store events', log: this.log, stopping: () => this.stopping, notice: this.outage })));
    } catch (err) {
      if (this.stopping) {
        m.release();
      } else {
        // Not the database being away (that is retried above): these events cannot be stored, and would
        // fail again on every redelivery.
        this.log.error({ err, userId: m.userId }, 'could not store events; message dead-lettered');
        m.deadLetter();
      }
      return;
    }
    accepted.forEach((e, i) => {
      const outcome = outcomes[i];
      if (outcome === 'unknown' || outcome === 'refused') {
        const sample = { kind: e.kind, endpoint: e.endpoint, taskId: 'task_id' in e ? e.task_id : undefined };
        if (outcome === 'unknown') this.refusals.refused('unknown_task', m.userId ?? e.endpoint, 'response event for a task that does not exist', sample);
        else this.refusals.refused('unexpected_endpoint', m.userId ?? e.endpoint, 'response event refused: the task does not expect this endpoint', sample);
        refused.push(e.endpoint);
      } else if (e.kind === 'register') {
        this.log.info({ endpoint: e.endpoint, taskTypes: e.task_types }, 'endpoint registered');
      }
    });
    if (refused.length > 0) m.deadLetter();
    else m.ack();
  }

  /**
   * Waits (up to `timeoutMs`) for the messages in hand to be stored and acked; call once the transport
   * stopped consuming. What is left is handed back to the broker when the connection closes.
   */
  async drain(timeoutMs: number): Promise<void> {
    await this.inFlight.settle(timeoutMs);
    this.stopping = true;
    this.refusals.stop();
  }

  /**
   * A register or heartbeat keeps only the configured task types (each would be a registry row, listed
   * by `GET /endpoints`); one with none left is refused.
   */
  private keepConfiguredTypes(e: PresenceEvent, sender: string | undefined, refused: string[]): boolean {
    const unknown = e.task_types.filter((t) => !this.taskTypes.has(t));
    if (unknown.length === 0) return true;
    this.refusals.refused('task_type', sender ?? e.endpoint, 'registry refused task types that are not configured',
      { kind: e.kind, endpoint: e.endpoint, taskTypes: unknown.slice(0, 10) }, unknown.length);
    e.task_types = e.task_types.filter((t) => this.taskTypes.has(t));
    if (e.task_types.length > 0) return true;
    refused.push(e.endpoint);
    this.o.metrics.collectedEvent(e.kind, 'refused');
    return false;
  }
}
