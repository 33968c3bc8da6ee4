import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DataSource } from 'typeorm';
import type { Config } from '../config/schema';
import { Completion } from '../manager/completion';
import { EndpointRegistry } from '../manager/endpoint-registry';
import { startPeriodic } from '../manager/jobs';
import type { Logger } from '../manager/logger';
import { Publisher } from '../manager/publisher';
import { ResponseStore } from '../manager/response-store';
import { TaskService } from '../manager/task-service';
import { TaskStore } from '../manager/task-store';
import type { Transport } from '../manager/transport';
import { createApp } from './app';

export interface ApiDeps {
  config: Config;
  ds: DataSource;
  transport: Transport;
  logger: Logger;
}

export interface ApiServer {
  readonly port: number;
  /** Stops accepting requests, lets in-flight ones complete, stops the periodic jobs. */
  stop(): Promise<void>;
}

/**
 * Starts the HTTP API and its periodic jobs: resending tasks the broker never confirmed and marking
 * INCOMPLETE the tasks some expected endpoint never received. Both are safe with several instances.
 */
export async function startApi(deps: ApiDeps): Promise<ApiServer> {
  const { config, ds, transport } = deps;
  const log = deps.logger.child({ component: 'api' });
  const tasks = new TaskStore(ds);
  const publisher = new Publisher(transport, tasks, log);
  const completion = new Completion(ds);
  const service = new TaskService({
    taskTypes: config.task_types, endpointExpiry: config.api.endpoint_expiry, tasks,
    responses: new ResponseStore(ds), registry: new EndpointRegistry(ds), publisher, maxBatch: 256,
  });
  let stopping: Promise<void> | null = null;
  const app = createApp({ service, bodyLimit: config.api.body_limit, logger: log, draining: () => stopping !== null });
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
  // A transport that kept nothing across the restart: hand every unfinished task out again.
  if (!transport.durable) await publisher.redeliverUnfinished();
  const jobs = [
    startPeriodic('resend', config.api.resend_interval * 1000, () => publisher.resendUnsent(config.api.resend_after * 1000), log),
    startPeriodic('incomplete-sweep', config.api.sweep_interval * 1000,
      () => completion.sweepIncomplete(new Date(), config.api.wait_for_endpoints_timeout * 1000), log),
  ];
  log.info('listening', { host: config.api.host, port });

  return {
    port,
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timeout = new Promise<void>((resolve) => setTimeout(resolve, config.api.shutdown_timeout * 1000).unref());
        await Promise.race([closed, timeout]);
        server.closeAllConnections();
        await Promise.all(jobs.map((j) => j.stop()));
      })();
      return stopping;
    },
  };
}
