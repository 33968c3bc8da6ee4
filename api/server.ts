import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DataSource } from 'typeorm';
import type { Config } from '../config/schema';
import type { Logger } from '../lib/logger';
import { startPeriodic } from '../lib/periodic';
import { settlesWithin, withDeadline } from '../lib/retry';
import type { ServerTransport } from '../protocol/server-transport';
import { createApp } from './app';
import { OPEN_ACCESS, TokenGuard } from './auth';
import { Collector } from './collector';
import { OutputStore } from './storage/output-store';
import { EndpointService } from './endpoint-service';
import { HealthChecks } from './health';
import { MAX_ENDPOINT_LABELS, Metrics } from './metrics';
import { OperationsService } from './operations-service';
import { ScheduleService } from './schedule-service';
import { ScheduleStore } from './storage/schedule-store';
import { Publisher } from './publisher';
import { RetentionJob, retentionMs } from './retention';
import { StateResponder } from './state-responder';
import { Completion } from './storage/completion';
import { databaseNow, dialectOf } from './storage/database';
import { EndpointRegistry } from './storage/endpoint-registry';
import { taskInsertBound } from './storage/insert-bound';
import { Announce, History } from './storage/history';
import { TaskOperations } from './storage/operations';
import { ResponseStore } from './storage/response-store';
import { ResponseRows } from './storage/response-rows';
import { RetentionStore } from './storage/retention-store';
import { TaskQueries } from './storage/task-queries';
import { TaskStore } from './storage/task-store';
import { TokenStore } from './storage/token-store';
import { checkAutoincLockMode } from './storage/uncommitted';
import { PayloadSchemas } from './payload-schemas';
import { TaskService } from './task-service';
import { WatchHub } from './watch-hub';
import { clockOf } from './storage/database-clock';
import { WebhookStore } from './storage/webhook-store';
import { WebhookDispatcher } from './webhooks/dispatcher';
import { WebhookService } from './webhooks/service';
import { StreamLimits } from './stream-limits';

/** How long a look at the dead-letter queue's depth may take: the broker answers a passive declaration at once, or is in trouble. */
const DEAD_LETTER_CHECK_TIMEOUT_MS = 5000;

export interface ApiDeps {
  config: Config;
  ds: DataSource;
  transport: ServerTransport;
  logger: Logger;
  /** The package's version, for the API's document. */
  version: string;
  /** Endpoint managers this process runs (`npm start`): known before their registration is stored. */
  localEndpoints?: readonly string[];
}

export interface ApiServer {
  readonly port: number;
  readonly metrics: Metrics;
  /** Stops accepting requests and lets in-flight ones complete (the first step of a shutdown). */
  stopHttp(): Promise<void>;
  /** Stops consuming events and state requests, lets those in hand finish, stops the periodic jobs. */
  stopBackground(): Promise<void>;
}

/** The registry's endpoints may be label values of the metrics from the start (later ones as they register). */
async function knowRegisteredEndpoints(registry: EndpointRegistry, metrics: Metrics): Promise<void> {
  let after = '';
  for (let n = 0; n < MAX_ENDPOINT_LABELS;) {
    const page = await registry.list(after, 1000);
    metrics.knowEndpoints(page.map((e) => e.name));
    if (page.length < 1000) return;
    n += page.length;
    after = page[page.length - 1].name;
  }
}

/**
 * A configured task type that none of the registered endpoints serves (nor an endpoint this process runs):
 * its tasks would wait for managers that never consume them. Said once at start; a new fleet (nothing
 * registered yet) is not judged.
 */
async function warnUnservedTypes(registry: EndpointRegistry, config: Config, log: Logger): Promise<void> {
  const local = new Set(config.manager.transport === 'in-process' ? config.manager.endpoints.flatMap((e) => e.task_types) : []);
  const unserved = (await registry.unserved(config.task_types)).filter((t) => !local.has(t));
  for (const type of unserved) {
    log.warn({ taskType: type }, `task type '${type}' is served by no registered endpoint: add it to the task_types of the managers that should run it (manager.endpoints[].task_types or --tasktype) and restart them`);
  }
}

/**
 * The server side: the HTTP API, the collector of response events, the state responder, and the
 * periodic jobs (resending tasks the broker never confirmed, marking INCOMPLETE the tasks some expected
 * endpoint never received, ending the tasks whose execution deadline passed). Every part is safe with
 * several instances; every deadline is judged by the database's clock.
 */
export async function startApi(deps: ApiDeps): Promise<ApiServer> {
  const { config, ds, transport } = deps;
  // Parts that name their own component get the root logger: pino repeats a key bound twice.
  const log = deps.logger.child({ component: 'api' });
  const history = new History(ds);
  const webhookStore = new WebhookStore(ds);
  history.webhooks = webhookStore;
  webhookStore.notifying = config.api.webhooks.allow_per_task_urls && config.api.webhooks.notify_secret !== '';
  // Known before the first write: events of a subscription that exists are not missed while the job starts.
  await webhookStore.refreshActive();
  await checkAutoincLockMode(ds, log);
  const hub = new WatchHub(history, transport, deps.logger);
  const health = new HealthChecks(ds, () => transport.connected);
  const metrics = new Metrics({
    taskTypes: config.task_types, endpoints: config.manager.endpoints.map((e) => e.name),
    live: { brokerConnected: () => transport.connected, databaseUp: () => health.databaseUp() },
  });
  // Every committed change passes here: counted, then announced to waiting clients and streams.
  const announce: Announce = (events) => {
    metrics.recordEvents(events);
    hub.announce(events);
  };
  const responseRows = new ResponseRows(ds);
  const tasks = new TaskStore(ds, history, announce, responseRows);
  const publisher = new Publisher(transport, tasks, log, {
    backoff: { baseS: config.api.resend_interval, maxS: config.api.resend_backoff_max }, onResendFailure: metrics.resendFailed,
  });
  const completion = new Completion(ds, history, announce, responseRows, (done) => metrics.tasksDone(done));
  completion.dispatch = publisher.dispatch;
  const registry = new EndpointRegistry(ds);
  // Not worth failing the start over: endpoints are learnt from their heartbeats as well.
  await knowRegisteredEndpoints(registry, metrics).catch((err: unknown) => log.warn({ err }, 'could not read the endpoint registry for the metrics'));
  await warnUnservedTypes(registry, config, log).catch((err: unknown) => log.warn({ err }, 'could not read the endpoint registry for the task types'));
  const responses = new ResponseStore(ds, responseRows);
  const queries = new TaskQueries(ds, responseRows);
  const taskOperations = new TaskOperations(ds, completion, history, tasks, announce);
  // Alive: heard from within three heartbeats.
  const endpoints = new EndpointService(registry, responses, queries, 3 * config.manager.heartbeat_interval * 1000, config.api.endpoint_stale_after * 1000,
    { operations: taskOperations, transport, taskTypes: config.task_types, log });
  const payloads = new PayloadSchemas(config.command_types);
  const service = new TaskService({
    taskTypes: config.task_types, payloads, endpointExpiry: config.api.endpoint_expiry, unknownEndpoints: config.api.unknown_endpoints, localEndpoints: deps.localEndpoints ?? [], executionTimeout: config.api.execution_timeout, backgroundSendFrom: config.api.background_send_from, tasks, queries, responses, history,
    registry, publisher, hub, maxBatch: 256, maxBatchBytes: await taskInsertBound(ds), admit: (type, eps) => transport.admit(type, eps),
    resolveSelector: (type, selector) => endpoints.resolve(type, selector),
    notify: { allowed: config.api.webhooks.allow_per_task_urls, signing: config.api.webhooks.notify_secret !== '', allowHttp: config.api.webhooks.allow_http },
  });
  const operations = new OperationsService(service, taskOperations, publisher, transport, log);
  const identity = config.api.endpoint_identity;
  const batchSize = config.api.collector_batch;
  const output = new OutputStore(ds, config.api.output_max_lines, responseRows);
  const collector = new Collector({ ds, completion, registry, output, transport, identity, batchSize, announce, logger: deps.logger, metrics, taskTypes: config.task_types });
  const responder = new StateResponder({ completion, responses, transport, identity, batchSize, cancelledListed: config.api.cancelled_listed, logger: deps.logger, metrics });
  await transport.start();
  await hub.start();
  await collector.start();
  await responder.start();

  const schedules = new ScheduleService({ store: new ScheduleStore(ds), tasks: service, taskTypes: config.task_types, payloads, logger: log });
  const wh = config.api.webhooks;
  const dispatcher = new WebhookDispatcher(webhookStore, clockOf(ds), {
    timeoutMs: wh.timeout * 1000, retryForMs: wh.retry_for * 1000, retryBaseMs: wh.retry_base * 1000, retryMaxMs: wh.retry_max * 1000,
    concurrency: wh.concurrency, keepMs: wh.log_keep * 1000, allowPrivate: wh.allow_private, publicUrl: wh.public_url, notifySecret: wh.notify_secret,
    onAttempt: (outcome) => metrics.webhookAttempt(outcome),
  }, log.child({ component: 'webhooks' }));
  // Two refreshes' time and a margin: by then every instance whose refresh job runs knows of the subscription.
  const settleMs = dialectOf(ds) === 'mysql' ? 2 * wh.interval * 1000 + 100 : 0;
  const webhooks = new WebhookService(webhookStore, clockOf(ds), { taskTypes: config.task_types, allowHttp: wh.allow_http, settleMs, rotationOverlapMs: wh.rotation_overlap * 1000 },
    (hook, msgId, body) => dispatcher.send(hook, msgId, body));
  const tokens = new TokenStore(ds);
  const auth = config.api.auth === 'tokens';
  const guard = auth ? new TokenGuard(tokens, {
    cacheMs: config.api.auth_cache * 1000, addressFailures: config.api.auth_address_failures, keyFailures: config.api.auth_key_failures,
    failureWindowMs: config.api.auth_failure_window * 1000, tracked: config.api.auth_tracked,
    onFailure: (reason) => metrics.authFailures.inc({ reason }), onTokenRead: () => metrics.authTokenReads.inc(),
  }) : OPEN_ACCESS;
  if (!auth) log.warn('the API is open: api.auth is off, so anyone who reaches its port may create, read, retry and cancel tasks');
  let draining = false;
  const streams = {
    limits: new StreamLimits({ maxStreams: config.api.sse_max_streams, maxPerClient: config.api.sse_max_streams_per_client }),
    maxBufferedBytes: config.api.sse_max_buffered_bytes, metrics, log,
  };
  const app = createApp({
    service, output, operations, endpoints, schedules, webhooks, hub, streams, taskTypes: config.task_types, bodyLimit: config.api.body_limit, guard, tokens, auth,
    version: deps.version, logger: log, draining: () => draining, metrics, health,
    // A stalled MySQL answers nothing: each call of a request gives up after connect_timeout (503).
    dbCallLimitMs: dialectOf(ds) === 'mysql' ? config.manager.db.connect_timeout * 1000 : null,
  });
  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.api.port, config.api.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // A broker that kept nothing across the restart: hand every unfinished task out again.
  if (!transport.durable) await publisher.redeliverUnfinished();
  // Every deadline is judged by the database's clock, read at each run: API hosts whose clocks disagree judge alike.
  const dbNow = (): Promise<Date> => databaseNow(ds);
  const waitMs = config.api.wait_for_endpoints_timeout * 1000;
  const jobs = [
    startPeriodic('resend', config.api.resend_interval * 1000,
      metrics.job('resend', async () => publisher.resendUnsent(config.api.resend_after * 1000, await dbNow())), log),
    startPeriodic('incomplete-sweep', config.api.sweep_interval * 1000,
      metrics.job('sweep', async () => completion.sweepIncomplete(await dbNow(), waitMs)), log),
    startPeriodic('rollout-sweep', config.api.sweep_interval * 1000,
      metrics.job('rollout-sweep', async () => completion.sweepRollouts(await dbNow(), waitMs)), log),
    startPeriodic('deadline-sweep', config.api.sweep_interval * 1000,
      metrics.job('deadline-sweep', async () => {
        const { ended, aborts } = await completion.sweepDeadlines(await dbNow());
        // As a cancel does: a manager not connected now learns of it when it asks about the copy again.
        await Promise.all(aborts.map((a) => transport.publishControl({ kind: 'cancel', task_id: a.taskId, rounds: a.rounds }).catch((err: unknown) => {
          log.warn({ taskId: a.taskId, err }, 'deadline passed, but the control message to the running endpoints was not sent');
        })));
        return ended;
      }), log),
    // Every instance runs it: the firings' idempotent identifiers (and row locks on MySQL) make that safe.
    startPeriodic('schedules', config.api.schedule_interval * 1000, metrics.job('schedules', () => schedules.fireDue()), log),
    // Every instance runs it: each delivery is leased to one (SKIP LOCKED on MySQL), and taken over when its lease runs out.
    startPeriodic('webhooks', wh.interval * 1000, metrics.job('webhooks', () => dispatcher.run()), log),
    // Apart from the deliveries (which may wait on slow receivers): whether the write paths add the outbox's statement.
    startPeriodic('webhook-subscriptions', wh.interval * 1000, async () => {
      const oldest = await webhookStore.refreshActive() ? await webhookStore.oldestPending() : null;
      metrics.webhookOldestPending(oldest === null ? 0 : Math.max(0, ((await clockOf(ds).now()).getTime() - oldest.getTime()) / 1000));
    }, log),
    // Every instance runs it: a silence is announced by the one whose UPDATE of its notice wins. A tenth of
    // api.endpoint_stale_after late at most (within api.webhooks.interval and a minute).
    startPeriodic('endpoint-stale', Math.min(60_000, Math.max(wh.interval * 1000, config.api.endpoint_stale_after * 100)), metrics.job('endpoint-stale', async () => {
      const now = await clockOf(ds).now();
      return webhookStore.announceStale(now, new Date(now.getTime() - config.api.endpoint_stale_after * 1000), config.api.endpoint_stale_after);
    }), log),
    // Every instance runs it (a row deleted twice is deleted once); a row outstays its time by a tenth of it at most.
    startPeriodic('webhook-log-prune', Math.min(60_000, wh.log_keep * 100), () => dispatcher.prune(), log),
    // Every instance shows the same queue: alert on their maximum. A broker that does not answer leaves the last value.
    startPeriodic('dead-letter-check', config.api.dead_letter_check_interval * 1000, metrics.job('dead-letter-check', async () => {
      metrics.deadLetters(await withDeadline(transport.deadLetterDepth(), DEAD_LETTER_CHECK_TIMEOUT_MS, 'the dead-letter queue\'s depth'));
      return 0;
    }), log),
  ];
  const keepMs = retentionMs(config.api.retention);
  const retention = keepMs === null ? null : new RetentionJob(new RetentionStore(ds), keepMs, config.api.retention_batch, config.api.retention_duty_cycle);
  // Every instance runs it: each batch takes only tasks no other instance holds (SKIP LOCKED on MySQL).
  if (retention) jobs.push(startPeriodic('retention', config.api.retention_interval * 1000, metrics.job('retention', async () => retention.run(await dbNow())), log));
  const forgetMs = config.api.endpoint_forget_after * 1000;
  // Looks often enough to forget within a tenth of the wait, and at most once a sweep: the query reads only the registry.
  if (forgetMs > 0) {
    jobs.push(startPeriodic('endpoint-forget', Math.max(config.api.sweep_interval * 1000, Math.min(60_000, forgetMs / 10)),
      metrics.job('endpoint-forget', () => endpoints.forgetSilent(forgetMs)), log));
  }
  log.info({ host: config.api.host, port }, 'listening');

  let httpStopped: Promise<void> | null = null;
  let backgroundStopped: Promise<void> | null = null;
  const timeoutMs = config.api.shutdown_timeout * 1000;
  return {
    port,
    metrics,
    stopHttp() {
      httpStopped ??= (async () => {
        draining = true;
        // Streams and waiting clients would hold their connections open until the timeout.
        hub.closeAll();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await settlesWithin(closed, timeoutMs);
        server.closeAllConnections();
      })();
      return httpStopped;
    },
    stopBackground() {
      backgroundStopped ??= (async () => {
        await transport.stopConsuming();
        retention?.stop();
        // A large send's confirm may take up to a minute: one cut short is the resend job's once its hold lapses.
        await Promise.all([collector.drain(timeoutMs), responder.drain(timeoutMs), settlesWithin(publisher.flush(), timeoutMs)]);
        await Promise.all(jobs.map((j) => j.stop()));
      })();
      return backgroundStopped;
    },
  };
}
