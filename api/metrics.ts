import { collectDefaultMetrics, Counter, Gauge, Histogram, LabelValues, Registry } from 'prom-client';
import { ERRNR_ATTEMPTS_EXHAUSTED, ERRNR_HANDLER_TIMEOUT, ERRNR_TASK_REFUSED } from '../protocol/wire';
import type { StoredEvent } from './storage/history';
import { DELIVERY_STATUS, ENDPOINT_STATE, EVENT } from './lifecycle/states';

/**
 * The server side's Prometheus metrics, on a registry of its own (never prom-client's global one), so
 * that several API instances in one process (tests, the all-in-one launcher) keep apart. Built once
 * and handed to the parts that update it.
 *
 * Label values come only from the configuration (task types), the endpoint registry (endpoint names)
 * and fixed vocabularies (outcomes, routes, jobs): never from an identifier or a payload, so that the
 * number of series stays bounded whatever clients send.
 */

/** A value standing for "not one of the known names"; no task type or endpoint name can start with `_`. */
export const OTHER = '_other';
/** Distinct endpoint label values at most: a fleet larger than this shows the rest as `_other`. */
export const MAX_ENDPOINT_LABELS = 10_000;

const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);
/** Route label of requests no route matched (404s, 405s): their raw paths are whatever a client sent. */
const UNMATCHED = '_unmatched';

const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const E2E_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const JOB_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60];

export type ResponseOutcome = 'succeeded' | 'error' | 'timed_out' | 'gave_up' | 'refused';
export type JobName = 'resend' | 'sweep' | 'rollout-sweep' | 'deadline-sweep' | 'schedules' | 'retention' | 'dead-letter-check' | 'endpoint-forget' | 'webhooks' | 'endpoint-stale';
export type CollectedKind = 'receipt' | 'result' | 'output' | 'register' | 'heartbeat';
export type CollectedOutcome = 'stored' | 'duplicate' | 'unknown' | 'refused';
/** Why something an endpoint sent was refused (`tasker_peer_refusals_total`'s `reason`): a fixed set, never a name. */
export const PEER_REFUSALS = ['too_large', 'invalid', 'reply_to', 'not_sender', 'unknown_task', 'unexpected_endpoint', 'task_type'] as const;
export type PeerRefusal = typeof PEER_REFUSALS[number];

/** A task that became DONE, for the end-to-end histogram. */
export interface TaskDone {
  type: string;
  startTime: Date;
  endTime: Date;
}

/** What the scrape asks of the running system, read at scrape time rather than tracked. */
export interface LiveState {
  brokerConnected(): boolean;
  /** 1 when `SELECT 1` answered within the readiness timeout. */
  databaseUp(): Promise<boolean>;
}

type Inc = { inc(n?: number): void };
/** What came of a webhook delivery attempt. */
export type WebhookOutcome = 'delivered' | 'retrying' | 'failed';
type Observe = { observe(v: number): void };

interface TypeChildren {
  created: Inc;
  sent: Inc;
  done: Inc;
  incomplete: Inc;
  cancelled: Inc;
  retried: Inc;
  resendFailed: Inc;
  e2e: Observe;
}

/**
 * A counter whose series are plain numbers while the process works (an addition, where prom-client would
 * hash the labels on every increment), copied into prom-client when scraped. A series is shown from its
 * creation, at 0 until counted: a rate over a series that appears late misses its first increments.
 */
function fastCounter<L extends string>(config: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }): (...values: string[]) => Inc {
  const series: { labels: LabelValues<L>; cell: { value: number } }[] = [];
  new Counter<L>({
    ...config,
    collect() {
      this.reset();
      for (const s of series) this.inc(s.labels, s.cell.value);
    },
  });
  return (...values) => {
    const labels = Object.fromEntries(config.labelNames.map((n, i) => [n, values[i]])) as LabelValues<L>;
    const cell = { value: 0, inc(n = 1): void { this.value += n; } };
    series.push({ labels, cell });
    return cell;
  };
}

export function responseOutcome(errnr: number): ResponseOutcome {
  if (errnr === 0) return ENDPOINT_STATE.SUCCEEDED;
  if (errnr === ERRNR_HANDLER_TIMEOUT) return 'timed_out';
  if (errnr === ERRNR_ATTEMPTS_EXHAUSTED) return 'gave_up';
  // An unsigned, altered, foreign-signed or expired task the endpoint would not run.
  if (errnr === ERRNR_TASK_REFUSED) return 'refused';
  return 'error';
}

export class Metrics {
  readonly registry = new Registry();
  /** Failed bearer-token checks by reason: a climbing unknown_key or wrong_secret is someone guessing. */
  readonly authFailures = new Counter<'reason'>({
    name: 'tasker_auth_failures_total', help: 'Requests refused for their bearer token, by reason (no_token, malformed, unknown_key, revoked, wrong_secret, rate_limited).',
    labelNames: ['reason'], registers: [this.registry],
  });
  /** Database reads of a token by its key: the negative cache keeps unknown keys from adding to it. */
  readonly authTokenReads = new Counter({ name: 'tasker_auth_token_reads_total', help: 'Reads of a bearer token from the database (a key not in the token caches).', registers: [this.registry] });
  private readonly byType = new Map<string, TypeChildren>();
  /** Made on first use: a type no longer configured is rare, and its series is not shown before. */
  private otherType: TypeChildren | null = null;
  private readonly typeChildren: (type: string) => TypeChildren;
  private readonly responses: (...values: string[]) => Inc;
  /** type → endpoint → outcome → counter child; filled as responses arrive. */
  private readonly responseChildren = new Map<string, Map<string, Map<ResponseOutcome, Inc>>>();
  private readonly knownEndpoints = new Set<string>();
  private readonly http: Histogram<'method' | 'route' | 'status'>;
  /** method → route → status → histogram child. */
  private readonly httpChildren = new Map<string, Map<string, Map<number, Observe>>>();
  private readonly batchSizes: Observe;
  private readonly lag: Observe;
  private readonly collected: Record<CollectedKind, Record<CollectedOutcome, Inc>>;
  private readonly invalidMessages: Inc;
  private readonly peerRefusals: Record<PeerRefusal, Inc>;
  private readonly jobs: Record<JobName, { ok: Inc; failed: Inc; tasks: Inc; duration: Observe }>;
  private readonly deadLetterDepth: Gauge;
  private deadLetterDepthShown = false;
  private readonly sseOpen: Gauge;
  private readonly sseSlow: Inc;
  private readonly sseRefused: Inc;
  private readonly webhookOutcomes: Record<WebhookOutcome, Inc>;
  private readonly webhookOldest: Gauge;

  constructor(options: { taskTypes: readonly string[]; endpoints?: readonly string[]; live?: LiveState; processMetrics?: boolean }) {
    const registers = [this.registry];
    const typeCounter = (name: string, help: string) => fastCounter({ name, help, labelNames: ['type'] as const, registers });
    const created = typeCounter('tasker_tasks_created_total', 'Tasks stored (CREATED), by task type.');
    const sent = typeCounter('tasker_tasks_sent_total', 'Sends of a task the broker confirmed and that were recorded (first sends, resends, retried rounds), by task type.');
    const done = typeCounter('tasker_tasks_done_total', 'Tasks that became DONE (every expected endpoint finished), by task type.');
    const incomplete = typeCounter('tasker_tasks_incomplete_total', 'Tasks marked INCOMPLETE (some expected endpoint never received them in time), by task type.');
    const cancelled = typeCounter('tasker_tasks_cancelled_total', 'Tasks cancelled, by task type.');
    const retried = typeCounter('tasker_tasks_retried_total', 'Retries of a task (each sends it again to some of its endpoints), by task type.');
    const resendFailed = typeCounter('tasker_resend_failures_total',
      'Tasks the resend job could not send (refused, unroutable or not confirmed by the broker); each is tried again after its backoff, by task type.');
    const e2e = new Histogram({
      name: 'tasker_task_duration_seconds', help: 'Time from a task being stored to it becoming DONE, by task type.',
      labelNames: ['type'] as const, buckets: E2E_BUCKETS, registers,
    });
    this.typeChildren = (type: string): TypeChildren => {
      e2e.zero({ type });
      return {
        created: created(type), sent: sent(type), done: done(type), incomplete: incomplete(type), cancelled: cancelled(type),
        retried: retried(type), resendFailed: resendFailed(type), e2e: e2e.labels(type),
      };
    };
    // Every configured type is shown from the start (at 0), so that rates exist before the first task.
    for (const type of options.taskTypes) this.byType.set(type, this.typeChildren(type));

    this.responses = fastCounter({
      name: 'tasker_responses_total',
      help: 'Responses finished (stored results), by task type, endpoint and outcome (succeeded, error, timed_out, gave_up, refused).',
      labelNames: ['type', 'endpoint', 'outcome'] as const, registers,
    });
    for (const name of options.endpoints ?? []) this.knownEndpoints.add(name);

    this.http = new Histogram({
      name: 'tasker_http_request_duration_seconds',
      help: 'HTTP requests, by method, route template (not the path) and status.',
      labelNames: ['method', 'route', 'status'] as const, buckets: HTTP_BUCKETS, registers,
    });

    this.batchSizes = new Histogram({
      name: 'tasker_collector_batch_size', help: 'Events written by the collector in one transaction.', buckets: BATCH_BUCKETS, registers,
    });
    this.lag = new Histogram({
      name: 'tasker_collector_lag_seconds',
      help: 'Time from an endpoint producing an event (a result\'s end_time, a heartbeat\'s time) to its commit by the collector.',
      buckets: LAG_BUCKETS, registers,
    });
    const collected = fastCounter({
      name: 'tasker_collector_events_total', help: 'Events the collector handled, by kind and outcome (stored, duplicate, unknown task, refused).',
      labelNames: ['kind', 'outcome'] as const, registers,
    });
    const outcomes = (kind: CollectedKind): Record<CollectedOutcome, Inc> => ({
      stored: collected(kind, 'stored'), duplicate: collected(kind, 'duplicate'), unknown: collected(kind, 'unknown'), refused: collected(kind, 'refused'),
    });
    this.collected = { receipt: outcomes('receipt'), result: outcomes('result'), output: outcomes('output'), register: outcomes('register'), heartbeat: outcomes('heartbeat') };
    this.invalidMessages = fastCounter({
      name: 'tasker_collector_invalid_messages_total', help: 'Messages on the responses queue that were not valid (dead-lettered).', labelNames: [], registers,
    })();
    const refusals = fastCounter({
      name: 'tasker_peer_refusals_total', help: 'Messages and events from endpoints that the server side refused (dead-lettered or dropped), by reason.',
      labelNames: ['reason'] as const, registers,
    });
    this.peerRefusals = Object.fromEntries(PEER_REFUSALS.map((r) => [r, refusals(r)])) as Record<PeerRefusal, Inc>;

    const runs = fastCounter({ name: 'tasker_job_runs_total', help: 'Runs of the periodic jobs, by job and result.', labelNames: ['job', 'result'] as const, registers });
    const touched = fastCounter({
      name: 'tasker_job_tasks_total', help: 'Tasks the periodic jobs acted on (resend: sent again; sweep: marked INCOMPLETE; retention: removed; webhooks: deliveries tried), by job.',
      labelNames: ['job'] as const, registers,
    });
    const duration = new Histogram({
      name: 'tasker_job_duration_seconds', help: 'Duration of the periodic jobs\' runs, by job.', labelNames: ['job'] as const, buckets: JOB_BUCKETS, registers,
    });
    const job = (name: JobName) => {
      duration.zero({ job: name });
      return { ok: runs(name, 'ok'), failed: runs(name, 'error'), tasks: touched(name), duration: duration.labels(name) };
    };
    this.jobs = {
      resend: job('resend'), sweep: job('sweep'), 'rollout-sweep': job('rollout-sweep'), 'deadline-sweep': job('deadline-sweep'),
      schedules: job('schedules'), retention: job('retention'), 'dead-letter-check': job('dead-letter-check'),
      'endpoint-forget': job('endpoint-forget'), webhooks: job('webhooks'), 'endpoint-stale': job('endpoint-stale'),
    };
    // Registered at the first look: until then the depth is unknown, and a 0 would say the queue is empty.
    this.deadLetterDepth = new Gauge({
      name: 'tasker_dead_letter_messages', help: 'Messages in the dead-letter queue at the last look (every api.dead_letter_check_interval).', registers: [],
    });

    this.sseOpen = new Gauge({ name: 'tasker_sse_streams_open', help: 'Event streams (server-sent events) open in this API process.', registers });
    this.sseSlow = fastCounter({
      name: 'tasker_sse_disconnected_slow_total', help: 'Event streams closed because their client read too slowly (more than api.sse_max_buffered_bytes waiting).',
      labelNames: [], registers,
    })();
    this.sseRefused = fastCounter({
      name: 'tasker_sse_refused_total', help: 'Event streams refused (503) past api.sse_max_streams or api.sse_max_streams_per_client.', labelNames: [], registers,
    })();

    const deliveries = fastCounter({
      name: 'tasker_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome (delivered; retrying: failed, tried again later; failed: given up after api.webhooks.retry_for).',
      labelNames: ['outcome'] as const, registers,
    });
    const D = DELIVERY_STATUS;
    this.webhookOutcomes = { [D.DELIVERED]: deliveries(D.DELIVERED), retrying: deliveries('retrying'), [D.FAILED]: deliveries(D.FAILED) };
    this.webhookOldest = new Gauge({
      name: 'tasker_webhook_oldest_pending_seconds', help: 'Age of the oldest webhook delivery not yet made (of enabled subscriptions), at the last look; 0: none.', registers,
    });

    const live = options.live;
    if (live) {
      new Gauge({
        name: 'tasker_broker_connected', help: '1 while the API\'s broker connection is up, else 0.', registers,
        collect() { this.set(live.brokerConnected() ? 1 : 0); },
      });
      new Gauge({
        name: 'tasker_database_up', help: '1 when the database answered SELECT 1 at this scrape, else 0.', registers,
        async collect() { this.set(await live.databaseUp() ? 1 : 0); },
      });
    }
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters (promtool refuses them); each is the sum of its by-type gauge without the suffix.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        this.registry.removeSingleMetric(name);
      }
    }
  }

  private type(type: string): TypeChildren {
    return this.byType.get(type) ?? (this.otherType ??= this.typeChildren(OTHER));
  }

  /** An endpoint of the registry may be a label value (up to MAX_ENDPOINT_LABELS of them). */
  knowEndpoints(names: Iterable<string>): void {
    for (const name of names) {
      if (this.knownEndpoints.size >= MAX_ENDPOINT_LABELS) return;
      this.knownEndpoints.add(name);
    }
  }

  /**
   * Counts the changes of a committed transaction from its history: every transition of a task is
   * recorded there, in the transaction that makes it, and announced once it committed, so a change that
   * rolled back is never counted.
   */
  readonly recordEvents = (events: readonly StoredEvent[]): void => {
    for (const e of events) {
      switch (e.kind) {
        case EVENT.CREATED: this.type(e.type).created.inc(); break;
        case EVENT.SENT: this.type(e.type).sent.inc(); break;
        case EVENT.DONE: this.type(e.type).done.inc(); break;
        case EVENT.INCOMPLETE: this.type(e.type).incomplete.inc(); break;
        case EVENT.CANCELLED: this.type(e.type).cancelled.inc(); break;
        case EVENT.RETRIED: this.type(e.type).retried.inc(); break;
        case EVENT.FINISHED: {
          const endpoints = e.detail?.endpoints as { endpoint: string; errnr?: number }[] | undefined;
          for (const ep of endpoints ?? []) this.response(e.type, ep.endpoint, responseOutcome(ep.errnr ?? 0)).inc();
          break;
        }
        default:
      }
    }
  };

  private response(type: string, endpoint: string, outcome: ResponseOutcome): Inc {
    const t = this.byType.has(type) ? type : OTHER;
    const ep = this.knownEndpoints.has(endpoint) ? endpoint : OTHER;
    let byEndpoint = this.responseChildren.get(t);
    if (!byEndpoint) this.responseChildren.set(t, byEndpoint = new Map());
    let byOutcome = byEndpoint.get(ep);
    if (!byOutcome) byEndpoint.set(ep, byOutcome = new Map());
    let child = byOutcome.get(outcome);
    if (!child) byOutcome.set(outcome, child = this.responses(t, ep, outcome));
    return child;
  }

  /** A task the resend job tried to send, and could not. */
  readonly resendFailed = (type: string): void => {
    this.type(type).resendFailed.inc();
  };

  /** Tasks that became DONE in a committed transaction. */
  tasksDone(done: readonly TaskDone[]): void {
    for (const d of done) this.type(d.type).e2e.observe(Math.max(0, d.endTime.getTime() - d.startTime.getTime()) / 1000);
  }

  /** `route`: the router's template of the matched route, or undefined when none matched. */
  observeHttp(method: string, route: string | undefined, status: number, seconds: number): void {
    const m = HTTP_METHODS.has(method) ? method : OTHER;
    const r = route ?? UNMATCHED;
    let byRoute = this.httpChildren.get(m);
    if (!byRoute) this.httpChildren.set(m, byRoute = new Map());
    let byStatus = byRoute.get(r);
    if (!byStatus) byRoute.set(r, byStatus = new Map());
    let child = byStatus.get(status);
    if (!child) byStatus.set(status, child = this.http.labels(m, r, String(status)));
    child.observe(seconds);
  }

  /** A collector transaction committed: its size, and how long after their making its events were stored. */
  collectorBatch(size: number, eventTimesMs: readonly number[], nowMs: number): void {
    this.batchSizes.observe(size);
    for (const t of eventTimesMs) this.lag.observe(Math.max(0, nowMs - t) / 1000);
  }

  collectedEvent(kind: CollectedKind, outcome: CollectedOutcome): void {
    this.collected[kind][outcome].inc();
  }

  invalidMessage(): void {
    this.invalidMessages.inc();
  }

  peerRefused(reason: PeerRefusal, count = 1): void {
    this.peerRefusals[reason].inc(count);
  }

  /** Wraps a periodic job's run (which answers how many tasks it acted on) to count and time it. */
  job(name: JobName, run: () => Promise<number>): () => Promise<number> {
    const j = this.jobs[name];
    return async () => {
      const started = process.hrtime.bigint();
      try {
        const n = await run();
        j.ok.inc();
        if (n > 0) j.tasks.inc(n);
        return n;
      } catch (err) {
        j.failed.inc();
        throw err;
      } finally {
        j.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      }
    };
  }

  /** The dead-letter queue's depth, as just read from the broker. */
  deadLetters(messages: number): void {
    this.deadLetterDepth.set(messages);
    if (!this.deadLetterDepthShown) this.registry.registerMetric(this.deadLetterDepth);
    this.deadLetterDepthShown = true;
  }

  /** A webhook delivery attempt's outcome. */
  webhookAttempt(outcome: WebhookOutcome): void {
    this.webhookOutcomes[outcome].inc();
  }

  /** The age in seconds of the oldest pending webhook delivery, as just read. */
  webhookOldestPending(seconds: number): void {
    this.webhookOldest.set(seconds);
  }

  /** An event stream opened (+1) or closed (-1). */
  streamsOpen(delta: 1 | -1): void {
    this.sseOpen.inc(delta);
  }

  streamDisconnectedSlow(): void {
    this.sseSlow.inc();
  }

  streamRefused(): void {
    this.sseRefused.inc();
  }

  /** The Prometheus text exposition of everything. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
