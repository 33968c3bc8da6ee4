import { statSync, Stats } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { ConfigError, loadSigningKey, packageVersion, projectRoot } from '../config/loader';
import type { Config, EndpointConfig } from '../config/schema';
import { loadHandlers } from '../handlers';
import type { ShutdownStep } from '../lib/lifecycle';
import type { Logger } from '../lib/logger';
import { CommandRunner } from '../manager/command-runner';
import { EndpointManager } from '../manager/endpoint-manager';
import type { HandlerModule } from '../manager/handler';
import { WorkerPool } from '../manager/worker-pool';
import { TypeLimiter } from '../manager/type-limiter';
import type { Broker } from '../protocol/broker';
import { EndpointTransport } from '../protocol/endpoint-transport';
import { InProcessBroker } from '../protocol/in-process/in-process-broker';
import { RabbitBroker } from '../protocol/rabbitmq/rabbit-broker';
import { ServerTransport } from '../protocol/server-transport';
import { parsePublicKey, TaskSigner, TaskVerifier } from '../protocol/task-signature';
import { Topology } from '../protocol/topology';
import { loadTlsMaterial, TlsMaterial } from '../lib/tls-files';

/** How long an endpoint's publish waits for the broker's confirm before it is tried again. */
const ENDPOINT_PUBLISH_TIMEOUT_MS = 30_000;

export function topologyOf(config: Config): Topology {
  return new Topology(config.manager.message_queue.exchange, config.manager.message_queue.queue_type);
}

/**
 * Broker connections of this process: to RabbitMQ, one per part (the server side, each endpoint), or,
 * with `manager.transport: in-process`, to the one in-process broker they all share.
 */
export class Connections {
  private world: InProcessBroker | null = null;

  constructor(private readonly config: Config, private readonly logger: Logger) {}

  private connect(name: string, user: string, publishTimeoutMs: number): Broker {
    const mq = this.config.manager.message_queue;
    if (this.config.manager.transport === 'in-process') {
      if (!this.world) {
        this.world = new InProcessBroker(this.logger, this.config.manager.in_process_backlog);
        // What initialize sets on RabbitMQ: refused messages go to the dead-letter queue.
        this.world.setPolicy(topologyOf(this.config).deadLetterExchangePolicy);
      }
      return this.world.connect(user);
    }
    const tls = mq.tls.enabled ? (): TlsMaterial => loadTlsMaterial(mq.tls, 'manager.message_queue.tls', projectRoot()) : undefined;
    return new RabbitBroker(mq, { connectionName: name, publishTimeoutMs, logger: this.logger, tls });
  }

  /** `publishesTasks`: the API's (which signs them); initialize and the endpoint commands need no key. */
  server(role: string, publishesTasks = false): ServerTransport {
    const signer = publishesTasks ? signerOf(this.config) : null;
    const broker = this.connect(`tasker ${role} pid ${process.pid}`, this.config.manager.message_queue.username, this.config.api.publish_timeout * 1000);
    return new ServerTransport(broker, topologyOf(this.config), this.config.task_types, signer);
  }

  endpoint(name: string): EndpointTransport {
    // In-process, an endpoint authenticates as itself, as it would with its own RabbitMQ user.
    const user = this.config.manager.transport === 'in-process' ? name : this.config.manager.message_queue.username;
    return new EndpointTransport(this.connect(`tasker manager ${name} pid ${process.pid}`, user, ENDPOINT_PUBLISH_TIMEOUT_MS), topologyOf(this.config), name);
  }
}

/** The signer of the task messages (docs/security.md "Signed tasks"), or null when they go unsigned. */
export function signerOf(config: Config): TaskSigner | null {
  const signing = config.api.signing;
  if (signing.private_key === '') {
    if (signing.required) throw new ConfigError('config key \'api.signing.private_key\': must be set when api.signing.required is true (npm run keys -- create)');
    return null;
  }
  return new TaskSigner(loadSigningKey(config));
}

/** The checker of the task messages' signatures, or null when the endpoints run unsigned tasks. */
export function verifierOf(config: Config): TaskVerifier | null {
  const trust = config.manager.trust;
  if (trust.public_keys.length === 0) {
    if (trust.required) throw new ConfigError('config key \'manager.trust.public_keys\': must list a key when manager.trust.required is true (npm run keys -- list)');
    return null;
  }
  return new TaskVerifier(trust.public_keys.map(parsePublicKey), trust.max_skew * 1000);
}

/** The folder of the handler modules: `manager.handlers_dir` as is when absolute, else under the project's dist/. */
export function handlersDirOf(config: Config): string {
  return path.resolve(projectRoot(), 'dist', config.manager.handlers_dir);
}

/** The handler modules, or a start-up error naming `manager.handlers_dir` and the task type that has none. */
function loadHandlersChecked(types: readonly string[], dir: string): Map<string, HandlerModule> {
  const key = 'manager.handlers_dir';
  let stat: Stats;
  try {
    stat = statSync(dir);
  } catch (err) {
    throw new ConfigError(`config key '${key}': ${dir} does not exist (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); task types ${types.join(', ')} need their handler modules there`, { cause: err });
  }
  if (!stat.isDirectory()) throw new ConfigError(`config key '${key}': ${dir} is not a folder`);
  try {
    return loadHandlers(types, dir);
  } catch (err) {
    throw new ConfigError(`config key '${key}': ${(err as Error).message}`, { cause: err });
  }
}

/**
 * An endpoint's handlers: the module of each module type, the runner of each command type. A command
 * type that cannot run here (its `user` unknown, or the manager not root) stops the start.
 */
function handlersOf(config: Config, ep: EndpointConfig): Map<string, HandlerModule | CommandRunner> {
  const m = config.manager;
  const commands = config.command_types;
  const moduleTypes = ep.task_types.filter((t) => commands[t] === undefined);
  const modules = moduleTypes.length === 0 ? new Map<string, HandlerModule>() : loadHandlersChecked(moduleTypes, handlersDirOf(config));
  return new Map<string, HandlerModule | CommandRunner>(ep.task_types.map((t): [string, HandlerModule | CommandRunner] => {
    const def = commands[t];
    if (def === undefined) return [t, modules.get(t) as HandlerModule];
    return [t, new CommandRunner(t, def, { timeoutMs: (def.timeout ?? m.handler_timeout) * 1000, killGraceMs: m.kill_grace * 1000 }, process.env)];
  }));
}

export async function startEndpointManagers(config: Config, logger: Logger, connections: Connections, endpoints: readonly EndpointConfig[]): Promise<EndpointManager[]> {
  const m = config.manager;
  const managers: EndpointManager[] = [];
  const facts = { hostname: hostname(), os: process.platform, arch: process.arch, version: packageVersion() };
  const verifier = verifierOf(config);
  if (verifier) logger.info({ keys: verifier.keyIds }, 'endpoints run only tasks signed by a trusted key');
  const pool = poolOf(config, logger, endpoints);
  const limiter = Object.keys(m.type_concurrency).length > 0 ? new TypeLimiter(m.type_concurrency) : null;
  for (const ep of endpoints) {
    // How this endpoint's handlers are given: `module` (handlers/<type>), `command` (a command type's program).
    const kinds = [...new Set(ep.task_types.map((t) => (config.command_types[t] === undefined ? 'module' : 'command')))].sort();
    const manager = new EndpointManager({
      endpoint: ep.name,
      handlers: handlersOf(config, ep),
      handlerTimeoutMs: m.handler_timeout * 1000,
      heartbeatIntervalMs: m.heartbeat_interval * 1000,
      maxAttempts: m.max_attempts,
      receiptDelayMs: m.receipt_delay * 1000,
      stateTimeoutMs: m.state_timeout * 1000,
      prefetch: m.message_queue.prefetch,
      transport: connections.endpoint(ep.name),
      labels: ep.labels,
      verifier,
      facts: { ...facts, task_types: [...ep.task_types], handler_kinds: kinds },
      logger,
      output: { maxLines: m.output_max_lines, maxBytes: m.output_max_bytes, flushMs: m.output_flush * 1000, batchLines: m.output_batch_lines },
      pool,
      limiter,
    });
    await manager.start();
    managers.push(manager);
  }
  // Forked once the handler modules loaded here (a broken folder stops the start before), and ready
  // before this process says it is.
  await pool?.warm();
  return managers;
}

/**
 * The process's one worker pool (docs/handlers.md "Isolation"), shared by its endpoint managers, when
 * `manager.isolation` is `process` and an endpoint has a module task type; else null (in-process runs).
 */
function poolOf(config: Config, logger: Logger, endpoints: readonly EndpointConfig[]): WorkerPool | null {
  const m = config.manager;
  const modules = endpoints.some((ep) => ep.task_types.some((t) => config.command_types[t] === undefined));
  if (m.isolation !== 'process' || !modules) return null;
  const pool = new WorkerPool({
    size: m.concurrency, handlersDir: handlersDirOf(config), maxHeapMb: m.handler_max_heap_mb, killGraceMs: m.kill_grace * 1000, logger,
  });
  return pool;
}

/**
 * Stops the managers: consuming, then in-flight work (up to `manager.shutdown_timeout`), then their
 * connections; then the worker processes of their pool.
 */
export function managerShutdownSteps(config: Config, managers: EndpointManager[]): ShutdownStep[] {
  return [{
    name: 'stop endpoint managers',
    run: async () => {
      await Promise.all(managers.map((mg) => mg.stop(config.manager.shutdown_timeout * 1000)));
      await Promise.all([...new Set(managers.map((mg) => mg.pool))].map((pool) => pool?.close()));
    },
  }];
}
