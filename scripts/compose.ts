import path from 'node:path';
import type { DataSource } from 'typeorm';
import { projectRoot } from '../config/loader';
import type { Config, EndpointConfig } from '../config/schema';
import { loadHandlers } from '../handlers';
import { InProcessTransport } from '../manager/broker/in-process-transport';
import { RabbitTransport } from '../manager/broker/rabbit-transport';
import { createDataSource, openDatabase } from '../manager/database';
import { EndpointManager } from '../manager/endpoint-manager';
import type { ShutdownStep } from '../manager/lifecycle';
import type { Logger } from '../manager/logger';
import type { Transport } from '../manager/transport';

/** What every process builds once and hands to its parts. */
export interface Context {
  config: Config;
  logger: Logger;
  ds: DataSource;
  transport: Transport;
}

export async function openContext(config: Config, logger: Logger, role: string): Promise<Context> {
  const ds = await openDatabase(() => createDataSource(config.manager.db, projectRoot()), logger);
  const mq = config.manager.message_queue;
  const transport: Transport = config.manager.transport === 'in-process'
    ? new InProcessTransport(mq.exchange, mq.prefetch, logger)
    : new RabbitTransport(mq, { connectionName: `tasker ${role} pid ${process.pid}`, publishTimeoutMs: config.api.publish_timeout * 1000, logger });
  await transport.start();
  return { config, logger, ds, transport };
}

export async function startEndpointManagers(ctx: Context, endpoints: readonly EndpointConfig[]): Promise<EndpointManager[]> {
  const m = ctx.config.manager;
  const managers: EndpointManager[] = [];
  for (const ep of endpoints) {
    const manager = new EndpointManager({
      endpoint: ep.name,
      handlers: loadHandlers(ep.task_types, path.join(projectRoot(), 'dist', m.handlers_dir)),
      handlerTimeoutMs: m.handler_timeout * 1000,
      heartbeatIntervalMs: m.heartbeat_interval * 1000,
      maxAttempts: m.max_attempts,
      receiptDelayMs: m.receipt_delay * 1000,
      maxBatch: m.message_queue.prefetch,
      ds: ctx.ds,
      transport: ctx.transport,
      logger: ctx.logger,
    });
    await manager.start();
    managers.push(manager);
  }
  return managers;
}

/** Shutdown order: stop intake (done by the caller's first steps), in-flight work, broker, database. */
export function managerShutdownSteps(ctx: Context, managers: EndpointManager[]): ShutdownStep[] {
  return [
    { name: 'stop consuming', run: () => ctx.transport.stopConsuming() },
    { name: 'finish in-flight tasks', run: () => Promise.all(managers.map((mg) => mg.drain(ctx.config.manager.shutdown_timeout * 1000))) },
  ];
}

export function closeSteps(ctx: Context): ShutdownStep[] {
  return [
    { name: 'close broker connection', run: () => ctx.transport.close() },
    { name: 'close database', run: () => ctx.ds.destroy() },
  ];
}
