import path from 'node:path';
import { Static, TInteger, TNumber, TProperties, TString, Type } from '@sinclair/typebox';
import { createAjv, describeFailure, ERROR_KEYWORD } from '../lib/validation';
import { labelsProblem } from '../protocol/labels';
import { CommandType, CommandTypeError, CommandTypes, parseCommandType } from './command-types';
import { ENDPOINT_PATTERN, RESERVED_TASK_TYPES, TASK_TYPE_PATTERN } from '../protocol/names';
import { HOST_ENTRY_PATTERN, parseHostEntry } from '../protocol/rabbitmq/hosts';
import { parsePublicKey, SigningKeyError } from '../protocol/task-signature';

export { ENDPOINT_PATTERN, TASK_TYPE_PATTERN } from '../protocol/names';

/** Paths of the API that a task type would shadow (`/<task_type>`). */
export const RESERVED_ROUTES: readonly string[] = ['endpoints', 'events', 'schedules', 'webhooks', 'metrics', 'healthz', 'readyz', 'ui', 'tokens'];

/** `api.retention`: `off`, or a positive whole number of days, hours or minutes. */
export const RETENTION_PATTERN = /^(?:off|[1-9][0-9]{0,5}[dhm])$/;

const str = (def: string, pattern?: RegExp, error?: string): TString =>
  Type.String({ default: def, ...(pattern ? { pattern: pattern.source } : {}), ...(error ? { [ERROR_KEYWORD]: error } : {}) });
const int = (def: number, minimum: number, maximum: number): TInteger => Type.Integer({ default: def, minimum, maximum });
const num = (def: number, minimum: number, maximum: number): TNumber => Type.Number({ default: def, minimum, maximum });
// An enum rather than a union of literals, so that a wrong value is reported with the values it may take.
const oneOf = <const T extends string>(values: readonly T[], def: T) => Type.Unsafe<T>({ type: 'string', enum: [...values], default: def });
/** A section: its keys get their defaults when it is absent. */
const section = <T extends TProperties>(props: T) => Type.Object(props, { additionalProperties: false, default: {} });
const TaskTypeName = Type.String({ pattern: TASK_TYPE_PATTERN.source, [ERROR_KEYWORD]: `must match ${TASK_TYPE_PATTERN.source}` });

/** Keys and values are checked by the Kubernetes rules in `validateConfig`, where the failing key can be named. */
const LabelMap = Type.Record(Type.String(), Type.String(), { [ERROR_KEYWORD]: 'must be a mapping of label keys to string values' });

const EndpointSchema = Type.Object({
  name: Type.String({ pattern: ENDPOINT_PATTERN.source, [ERROR_KEYWORD]: `must match ${ENDPOINT_PATTERN.source}` }),
  /** Task types this endpoint serves; all of `task_types` when absent. */
  task_types: Type.Optional(Type.Array(TaskTypeName)),
  /** Labels the endpoint reports (selectors pick endpoints by them), over `manager.labels`. */
  labels: Type.Optional(LabelMap),
}, { additionalProperties: false });

/** TLS for a connection (RabbitMQ's, MySQL's): see lib/tls-files. */
const TlsSchema = section({
  enabled: Type.Boolean({ default: false }),
  ca: str(''),
  cert: str(''),
  key: str(''),
  servername: str(''),
  verify: Type.Boolean({ default: true }),
});

const DbSchema = section({
  /** Empty for a process that needs no database (an endpoint manager). */
  uri: str(''),
  verbose: Type.Boolean({ default: false }),
  /** Optional superuser URI that initialize uses to create the database and the application user. */
  admin_uri: str(''),
  pool_size: int(10, 1, 500),
  /** Seconds to wait for a connection, and that each database call of a request may take, before answering 503. */
  connect_timeout: num(3, 0.1, 120),
  /** Seconds one statement may take before its connection is closed (migrations excepted). */
  query_timeout: num(10, 0.1, 3600),
  tls: TlsSchema,
});

const MessageQueueSchema = section({
  /** The one node, when `hosts` is empty. */
  host: str('127.0.0.1'),
  /** The port of `host`, and of every `hosts` entry that names none. */
  port: int(5672, 1, 65535),
  /** Nodes of a cluster (`host` or `host:port`), tried in turn from a random one; replaces `host` when not empty. */
  hosts: Type.Array(Type.String({ pattern: HOST_ENTRY_PATTERN.source, [ERROR_KEYWORD]: 'must be host or host:port' }), { default: [] }),
  username: str('guest'),
  password: str('guest'),
  virtual_host: str('/'),
  exchange: str('tasker', /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
  heartbeat: int(30, 0, 3600),
  prefetch: int(32, 1, 65535),
  queue_type: oneOf(['classic', 'quorum'], 'classic'),
  /** amqps: the port's default becomes 5671. */
  tls: TlsSchema,
});

/**
 * The configuration's shape, defaults and bounds, declared once: the loader merges defaults, YAML and
 * environment and validates against it; the TypeScript types come from it.
 */
export const ConfigSchema = Type.Object({
  mode: Type.String(),
  log_level: oneOf(['debug', 'info', 'warn', 'error'], 'info'),
  task_types: Type.Array(TaskTypeName),
  api: section({
    host: str('0.0.0.0'),
    port: int(8888, 0, 65535),
    wait_for_endpoints_timeout: num(60, 0.1, 86400 * 30),
    /** Seconds a task may run, from its send, when its POST gives no `timeout`: then it ends (INCOMPLETE). */
    execution_timeout: int(3600, 1, 86400 * 30),
    body_limit: int(1024 * 1024, 1024, 64 * 1024 * 1024),
    /** Seconds a publish waits for the broker's confirm, per 1,000 queues it reaches (at most 60 s for those over 1,000). */
    publish_timeout: num(5, 0.1, 600),
    /**
     * A task expecting at least this many endpoints is answered once its task row is stored (status CREATED); its
     * response rows are written and it is published right after, without the POST waiting for either; 0: every POST
     * writes its rows and waits for the broker's confirm.
     */
    background_send_from: int(200, 0, 1_000_000),
    resend_interval: num(5, 0.05, 3600),
    resend_after: num(10, 0, 3600),
    /** The longest wait, in seconds, before the resend job tries again a task whose sends keep failing. */
    resend_backoff_max: num(300, 1, 86400),
    /** Seconds between runs of the sweeps (INCOMPLETE, rollout slots, execution deadlines). */
    sweep_interval: num(5, 0.05, 3600),
    /** Seconds between looks at the depth of the dead-letter queue (`tasker_dead_letter_messages`). */
    dead_letter_check_interval: num(15, 0.1, 3600),
    /** Seconds between looks for schedules that are due: how late after its time a firing may be. */
    schedule_interval: num(1, 0.05, 60),
    shutdown_timeout: num(10, 0.1, 600),
    /** Endpoints silent for longer than this many seconds are no longer expected by tasks that list none. */
    endpoint_expiry: num(86400, 1, 86400 * 365),
    /** Seconds after its last heartbeat an endpoint is shown `stale` (GET /endpoints, tasker endpoints). */
    endpoint_stale_after: num(600, 1, 86400 * 365),
    /** Seconds after its last heartbeat a silent endpoint is removed (as by DELETE /endpoints/<name> with force); 0: never. */
    endpoint_forget_after: num(0, 0, 86400 * 365),
    /**
     * `refuse`: a task listing an endpoint name that never registered and was not added (`npm run endpoint --
     * add`) is a 422 unless its request says `allow_unknown_endpoints`; `allow`: such names are trusted.
     */
    unknown_endpoints: oneOf(['refuse', 'allow'], 'refuse'),
    /** How the server side knows which endpoint sent an event: the event's field, or the RabbitMQ user (`user_id`). */
    endpoint_identity: oneOf(['shared_user', 'per_endpoint_user'], 'shared_user'),
    /** Most response events (or state requests) written in one transaction. */
    collector_batch: int(500, 1, 10_000),
    /** Most cancelled (or superseded) rounds listed to a (re)connecting manager; it asks about older deliveries. */
    cancelled_listed: int(10_000, 1, 100_000),
    /** `tokens`: every route but the health checks needs a bearer token with the route's scope; `off`: the API is open. */
    auth: oneOf(['off', 'tokens'], 'off'),
    /** Seconds a verified token is trusted before it is read again (a revocation takes effect within it). */
    auth_cache: num(5, 0, 3600),
    /** Failed token checks one client address may make within api.auth_failure_window before it is answered 429. */
    auth_address_failures: int(50, 1, 1_000_000),
    /** Failed token checks naming one token key within api.auth_failure_window before the key is answered 429. */
    auth_key_failures: int(10, 1, 1_000_000),
    /** Seconds over which failed token checks are counted (and the longest Retry-After of a 429). */
    auth_failure_window: int(60, 1, 86_400),
    /** Most addresses and keys whose failures are counted (the oldest forgotten first), and most unknown keys remembered for api.auth_cache. */
    auth_tracked: int(10_000, 1, 1_000_000),
    /** How long ended tasks are kept (with their responses and history): `30d`, `12h`, `90m`, or `off` to keep them for ever. */
    retention: str('off', RETENTION_PATTERN, 'must be off or a whole number of days, hours or minutes such as 30d, 12h or 90m'),
    /** Most tasks removed by the retention job in one transaction. */
    retention_batch: int(500, 1, 10_000),
    /** The share of the time the retention job may spend removing: it idles between batches for the rest. */
    retention_duty_cycle: num(0.1, 0.01, 1),
    /** Seconds between runs of the retention job. */
    retention_interval: num(60, 0.05, 86400),
    /** Lines of live output stored per run (task, endpoint, round, attempt) at most: the first ones are kept, one line marks the cut, later ones are dropped. */
    output_max_lines: int(10_000, 0, 1_000_000),
    /** Bytes an event stream may have waiting for its client to read; past it the client is disconnected (it resumes with Last-Event-ID). */
    sse_max_buffered_bytes: int(1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
    /** Event streams open in this API process at most; more are answered 503 with Retry-After. */
    sse_max_streams: int(1000, 1, 1_000_000),
    /** Event streams open per client (its token, or its address when api.auth is off) at most; more are answered 503 with Retry-After. */
    sse_max_streams_per_client: int(20, 1, 1_000_000),
    /** docs/security.md "Signed tasks": the key every task message is signed with. */
    signing: section({
      /** PEM file of the Ed25519 private key (`npm run keys -- create`), relative to the project; empty: tasks go unsigned. */
      private_key: str(''),
      /** The API refuses to start without `private_key` (the production mode's default). */
      required: Type.Boolean({ default: false }),
    }),
    webhooks: section({
      /** Seconds between an API instance's looks for webhook deliveries that are due. */
      interval: num(1, 0.05, 60),
      /** Seconds a receiver has to answer a delivery with a 2xx. */
      timeout: num(10, 0.1, 120),
      /** Seconds a delivery is retried for (from its event) before it is failed; a subscription failing this long is disabled. */
      retry_for: num(3 * 86400, 1, 30 * 86400),
      /** Seconds before the first retry of a delivery; doubled at each further one (with jitter) up to retry_max. */
      retry_base: num(10, 0.01, 3600),
      /** The longest pause, in seconds, between two tries of a delivery. */
      retry_max: num(3600, 0.01, 86400),
      /** Deliveries one API instance has in flight at most. */
      concurrency: int(16, 1, 256),
      /** Seconds a delivered or failed delivery stays in the delivery log. */
      log_keep: num(7 * 86400, 60, 365 * 86400),
      /** Seconds a secret replaced by `POST /webhooks/<id>/rotate` still signs deliveries, beside the new one. */
      rotation_overlap: num(86400, 0, 30 * 86400),
      /** Whether subscriptions may have http:// URLs (otherwise https:// only). */
      allow_http: Type.Boolean({ default: false }),
      /** Whether deliveries may go to private, loopback and link-local addresses. */
      allow_private: Type.Boolean({ default: false }),
      /** Whether a task's POST may carry its own `notify` URL, to which its end is POSTed (signed with notify_secret). */
      allow_per_task_urls: Type.Boolean({ default: false }),
      /** The secret (`whsec_` and base64 of 24 to 64 bytes) that signs the tasks' own `notify` deliveries; empty: `notify` is refused. */
      notify_secret: str('', /^(?:whsec_[A-Za-z0-9+/]{32,88}={0,2})?$/, 'must be empty or whsec_ and the base64 of 24 to 64 random bytes (e.g. whsec_$(openssl rand -base64 24))'),
      /** The API's public base URL (e.g. https://tasker.example.com): the payloads' links start with it; empty: links are paths. */
      public_url: str('', /^(?:https?:\/\/[^\s/]+(?:\/\S*[^/\s])?)?$/, 'must be empty or an http(s) URL without a trailing slash'),
    }),
  }),
  manager: section({
    /** How tasks travel: RabbitMQ, or in-process queues when API and managers share one process. */
    transport: oneOf(['rabbitmq', 'in-process'], 'rabbitmq'),
    endpoints: Type.Array(EndpointSchema, { default: [] }),
    /** Labels of every endpoint this process runs (`TASKER_LABELS=role=web,region=eu`); an endpoint's own labels win. */
    labels: Type.Record(Type.String(), Type.String(), { default: {}, [ERROR_KEYWORD]: 'must be a mapping of label keys to string values' }),
    handler_timeout: num(300, 0.01, 86400),
    /** Seconds between the SIGTERM and the SIGKILL of a command type's process group (timeout, cancel, shutdown). */
    kill_grace: num(5, 0, 60),
    /** `process`: each module handler run happens in a worker process of a warm pool (docs/handlers.md "Isolation"); `none`: in the manager's own process. */
    isolation: oneOf(['process', 'none'], 'process'),
    /** Worker processes of a manager process's pool: most module handler runs at once (with `isolation: process`). */
    concurrency: int(4, 1, 1024),
    /**
     * Most runs of a task type at once in a manager process, per type (`{deploy: 1}`), whatever runs them; more wait
     * for a slot. A type not named is bounded by `concurrency` (module handlers) and `prefetch` only.
     */
    type_concurrency: Type.Record(TaskTypeName, Type.Integer({ minimum: 1, maximum: 1024 }), {
      default: {}, [ERROR_KEYWORD]: 'must be a mapping of task type names to whole numbers from 1 to 1024',
    }),
    /** MiB of V8 heap each worker process may use (`--max-old-space-size`); past it the run fails with errnr 260. */
    handler_max_heap_mb: int(512, 16, 65_536),
    /** Lines of a run's live output sent at most (docs/handlers.md "Output"); past it they are counted, and one last line says how many; 0: none sent. */
    output_max_lines: int(10_000, 0, 1_000_000),
    /** Bytes of a run's live output sent at most (the UTF-8 of its lines). */
    output_max_bytes: int(1024 * 1024, 0, 1024 * 1024 * 1024),
    /** Seconds between a run's output events while it runs (at most one each): the rate a chatty run may cost. */
    output_flush: num(0.25, 0.01, 60),
    /** Most lines of one output event while the run runs (more wait for the next one). */
    output_batch_lines: int(500, 1, 1000),
    /** Seconds a first delivery's handler may run before its receipt (a status 0 row) is written; 0: always before. */
    receipt_delay: num(0.25, 0, 60),
    /**
     * Where `<task_type>` handler modules are: relative, a folder of the project (loaded compiled, from
     * dist/); absolute, a folder of compiled modules anywhere (the endpoint package's way: docs/endpoint-host.md).
     */
    handlers_dir: str('handlers', /^\/?[A-Za-z0-9_][A-Za-z0-9_./-]*$/, 'must be a relative or absolute path of A-Z a-z 0-9 _ . / -'),
    heartbeat_interval: num(10, 0.1, 3600),
    max_attempts: int(5, 1, 1000),
    /** Seconds a manager waits for the server side's answer about a redelivered task before asking again. */
    state_timeout: num(10, 0.1, 600),
    shutdown_timeout: num(30, 0.1, 3600),
    /**
     * With `transport: in-process`, most messages waiting in one queue (an endpoint's tasks of a type, the
     * response events): past it POST answers 503 with Retry-After, so that memory stays bounded.
     */
    in_process_backlog: int(10_000, 10, 1_000_000),
    db: DbSchema,
    message_queue: MessageQueueSchema,
    /** docs/security.md "Signed tasks": whose signatures the endpoints accept. */
    trust: section({
      /** Raw Ed25519 public keys in base64 (`ed25519:<base64>` or bare), several during a rotation; empty: unsigned tasks run. */
      public_keys: Type.Array(Type.String(), { default: [] }),
      /** Seconds the server side's clock may be behind an endpoint's before a task's deadline counts as passed. */
      max_skew: num(60, 0, 3600),
      /** Managers refuse to start without `public_keys` (the production mode's default). */
      required: Type.Boolean({ default: false }),
    }),
  }),
  rabbitmq: section({
    apiurl: str('http://127.0.0.1:15672/api'),
    username: str('guest'),
    password: str('guest'),
  }),
}, { additionalProperties: false });

type Frozen<T> = T extends readonly (infer U)[] ? readonly Frozen<U>[] : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;
type RawConfig = Static<typeof ConfigSchema>;
type RawManager = RawConfig['manager'];

export type EndpointConfig = Frozen<Required<RawManager['endpoints'][number]>>;
export type DbConfig = Frozen<RawManager['db']>;
export type TlsConfig = DbConfig['tls'];
/** TLS off: what a connection made outside the configuration (a test's own) is given. */
export const TLS_OFF: TlsConfig = Object.freeze({ enabled: false, ca: '', cert: '', key: '', servername: '', verify: true });
export type MessageQueueConfig = Frozen<RawManager['message_queue']>;
/**
 * The validated configuration: every endpoint's task types filled in; `task_types` holds names only, and
 * the types declared as commands are in `command_types` (not a YAML key: made from `task_types`).
 */
export type Config = Frozen<Omit<RawConfig, 'manager'>> & {
  readonly manager: Frozen<Omit<RawManager, 'endpoints'>> & { readonly endpoints: readonly EndpointConfig[] };
  readonly command_types: CommandTypes;
};

/**
 * The longest handler_timeout with RabbitMQ, in seconds: its default `consumer_timeout` (30 minutes, since
 * 3.8.15) less a minute to commit the response and ack.
 */
export const RABBITMQ_MAX_HANDLER_TIMEOUT_S = 1800 - 60;

export class ConfigError extends Error {
  readonly code = 'config_invalid';
}

function fail(path: string, message: string): never {
  throw new ConfigError(`config key '${path}': ${message}`);
}

// coerceTypes: YAML and the environment may give `port: "8888"` or `password: 123`.
const validate = createAjv({ useDefaults: true, coerceTypes: true }).compile(ConfigSchema);

/** `null` means "not set" in YAML (`port:` with no value): the default applies. */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, dropNulls(v)]));
}

/** An endpoint may be given by its name alone. */
function expandEndpoints(raw: Record<string, unknown>): void {
  const manager = raw.manager as Record<string, unknown> | undefined;
  if (typeof manager !== 'object' || manager === null || !Array.isArray(manager.endpoints)) return;
  manager.endpoints = manager.endpoints.map((e: unknown) => (typeof e === 'string' ? { name: e } : e));
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The raw `manager.message_queue` section, if it is a mapping. */
function rawMessageQueue(raw: Record<string, unknown>): Record<string, unknown> | null {
  const mq = (raw.manager as Record<string, unknown> | undefined)?.message_queue;
  return typeof mq === 'object' && mq !== null && !Array.isArray(mq) ? mq as Record<string, unknown> : null;
}

/** With TLS on, a port not given is AMQPS's (5671) rather than AMQP's. */
function defaultTlsPort(mq: Record<string, unknown> | null): void {
  const tls = mq?.tls as Record<string, unknown> | undefined;
  if (!mq || typeof tls !== 'object' || tls === null || mq.port !== undefined) return;
  if (tls.enabled === true || tls.enabled === 'true') mq.port = 5671;
}

/** TLS keys set while TLS is off would be ignored in silence, and the connection left in clear text. */
function checkTlsOff(tls: { enabled: boolean; ca: string; cert: string; key: string; servername: string }, prefix: string): void {
  if (tls.enabled) return;
  const set = (['ca', 'cert', 'key', 'servername'] as const).find((k) => tls[k] !== '');
  if (set) fail(`${prefix}.enabled`, `must be true when ${prefix}.${set} is set (TLS is off, so it would be ignored)`);
}

/** `public_keys` may be given as one comma-separated string (an environment variable); empty means none. */
function splitPublicKeys(raw: Record<string, unknown>): void {
  const trust = (raw.manager as Record<string, unknown> | undefined)?.trust as Record<string, unknown> | undefined;
  if (typeof trust === 'object' && trust !== null && typeof trust.public_keys === 'string') {
    trust.public_keys = trust.public_keys.split(',').map((k) => k.trim()).filter((k) => k !== '');
  }
}

/** `hosts` may be given as one comma-separated string (handy in an environment variable); empty means none. */
function splitHosts(mq: Record<string, unknown> | null): void {
  if (mq && typeof mq.hosts === 'string') mq.hosts = mq.hosts.split(',').map((h) => h.trim()).filter((h) => h !== '');
}

/**
 * `hosts` replaces `host`; a `host` set beside it must be one of the hosts (as the test mode's is), or the
 * configuration says two different things and is refused.
 */
function checkHosts(mq: MessageQueueConfig, hostGiven: boolean): void {
  mq.hosts.forEach((h, i) => {
    try {
      parseHostEntry(h, mq.port);
    } catch (err) {
      fail(`manager.message_queue.hosts[${i}]`, (err as Error).message);
    }
  });
  if (mq.hosts.length === 0) {
    if (mq.host === '') fail('manager.message_queue.host', 'must be set when manager.message_queue.hosts is empty');
    return;
  }
  const names = mq.hosts.map((h) => parseHostEntry(h, mq.port).host);
  if (hostGiven && !names.includes(mq.host)) {
    fail('manager.message_queue.host', `'${mq.host}' is not among manager.message_queue.hosts (${mq.hosts.join(', ')}); set one of them only`);
  }
}

function checkLabels(path: string, labels: Readonly<Record<string, string>>): void {
  const problem = labelsProblem(labels);
  if (problem) fail(problem.key === null ? path : `${path}.${problem.key}`, problem.message);
}

/**
 * Takes the command types (`task_types` entries that are mappings) out of `task_types`, validated, and
 * leaves their names in their place: the rest of the code sees a list of names.
 */
function extractCommandTypes(raw: Record<string, unknown>): Map<string, CommandType> {
  const commands = new Map<string, CommandType>();
  if (!Array.isArray(raw.task_types)) return commands;
  raw.task_types = raw.task_types.map((entry: unknown, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return entry;
    try {
      const def = parseCommandType(entry, `task_types[${i}]`);
      if (commands.has(def.name)) fail(`task_types[${i}].name`, `'${def.name}' is declared twice`);
      commands.set(def.name, def);
      return def.name;
    } catch (err) {
      if (err instanceof CommandTypeError) fail(err.path, err.message);
      throw err;
    }
  });
  return commands;
}

/** The keys that name files or folders, each to be resolved against `ValidateOptions.pathsFrom`. */
function resolvePaths(cfg: Static<typeof ConfigSchema>, from: string): void {
  const abs = (p: string): string => (p === '' ? p : path.resolve(from, p));
  cfg.manager.handlers_dir = abs(cfg.manager.handlers_dir);
  for (const tls of [cfg.manager.message_queue.tls, cfg.manager.db.tls]) {
    tls.ca = abs(tls.ca);
    tls.cert = abs(tls.cert);
    tls.key = abs(tls.key);
  }
  cfg.api.signing.private_key = abs(cfg.api.signing.private_key);
}

export interface ValidateOptions {
  /**
   * Relative paths (handlers_dir, TLS files, the signing key) are made absolute from this folder: a
   * configuration file of one's own (the endpoint package's `--config`) means its own folder. Without it
   * they stay relative to the project.
   */
  pathsFrom?: string;
}

/** Validates a merged raw configuration and returns it typed, completed with defaults, and frozen. */
export function validateConfig(input: unknown, options: ValidateOptions = {}): Config {
  const raw = dropNulls(input ?? {}) as Record<string, unknown>;
  expandEndpoints(raw);
  const commands = extractCommandTypes(raw);
  const rawMq = rawMessageQueue(raw);
  splitHosts(rawMq);
  splitPublicKeys(raw);
  const hostGiven = typeof rawMq?.host === 'string' && rawMq.host !== '';
  defaultTlsPort(rawMq);
  if (!validate(raw)) {
    const f = describeFailure(validate.errors);
    fail(f.path, f.message);
  }
  const cfg = raw as unknown as Static<typeof ConfigSchema>;
  // RabbitMQ closes a channel whose delivery stays unacked longer than its consumer_timeout (30 minutes
  // by default), and with it every other delivery on that channel: a handler must finish well before.
  if (cfg.manager.transport === 'rabbitmq' && cfg.manager.handler_timeout > RABBITMQ_MAX_HANDLER_TIMEOUT_S) {
    fail('manager.handler_timeout', `must be at most ${RABBITMQ_MAX_HANDLER_TIMEOUT_S} s with RabbitMQ (its 30-minute consumer_timeout less a minute to commit and ack); got ${cfg.manager.handler_timeout}`);
  }
  if (cfg.api.webhooks.retry_base > cfg.api.webhooks.retry_max) {
    fail('api.webhooks.retry_base', `must not be longer than api.webhooks.retry_max (${cfg.api.webhooks.retry_max} s)`);
  }
  if (cfg.manager.receipt_delay >= cfg.api.wait_for_endpoints_timeout) {
    fail('manager.receipt_delay', `must be shorter than api.wait_for_endpoints_timeout (${cfg.api.wait_for_endpoints_timeout} s)`);
  }
  checkHosts(cfg.manager.message_queue, hostGiven);
  if (cfg.manager.transport === 'rabbitmq') {
    for (const k of ['username', 'password'] as const) {
      if (cfg.manager.message_queue[k] === '') fail(`manager.message_queue.${k}`, 'must be set (the production mode reads it from TASKER_MQ_' + k.toUpperCase() + ')');
    }
  }
  checkTlsOff(cfg.manager.message_queue.tls, 'manager.message_queue.tls');
  checkTlsOff(cfg.manager.db.tls, 'manager.db.tls');
  // mysql2 checks the certificate against the host of the URI and takes no other name.
  if (cfg.manager.db.tls.servername !== '') fail('manager.db.tls.servername', 'is not used for MySQL: the server\'s certificate must name the host of manager.db.uri');
  cfg.task_types.forEach((t, i) => {
    const timeout = commands.get(t)?.timeout;
    if (timeout !== undefined && cfg.manager.transport === 'rabbitmq' && timeout > RABBITMQ_MAX_HANDLER_TIMEOUT_S) {
      fail(`task_types[${i}].timeout`, `must be at most ${RABBITMQ_MAX_HANDLER_TIMEOUT_S} s with RabbitMQ (its 30-minute consumer_timeout less a minute to commit and ack); got ${timeout}`);
    }
  });
  if (cfg.task_types.length === 0) fail('task_types', 'must list at least one task type');
  cfg.task_types.forEach((t, i) => {
    if (RESERVED_TASK_TYPES.includes(t)) fail(`task_types[${i}]`, `'${t}' is reserved (${RESERVED_TASK_TYPES.join(', ')} name the server side's own queues)`);
    if (RESERVED_ROUTES.includes(t)) fail(`task_types[${i}]`, `'${t}' is reserved (${RESERVED_ROUTES.join(', ')} are routes of the API)`);
  });
  if (new Set(cfg.task_types).size !== cfg.task_types.length) fail('task_types', 'has duplicates');
  for (const t of Object.keys(cfg.manager.type_concurrency)) {
    if (!cfg.task_types.includes(t)) fail(`manager.type_concurrency.${t}`, `'${t}' is not in task_types`);
  }
  checkLabels('manager.labels', cfg.manager.labels);
  cfg.manager.trust.public_keys.forEach((k, i) => {
    try {
      parsePublicKey(k);
    } catch (err) {
      if (err instanceof SigningKeyError) fail(`manager.trust.public_keys[${i}]`, err.message);
      throw err;
    }
  });
  const seen = new Set<string>();
  cfg.manager.endpoints.forEach((ep, i) => {
    if (seen.has(ep.name)) fail(`manager.endpoints[${i}].name`, `endpoint '${ep.name}' listed twice`);
    seen.add(ep.name);
    for (const t of ep.task_types ?? []) {
      if (!cfg.task_types.includes(t)) fail(`manager.endpoints[${i}].task_types`, `'${t}' is not in task_types`);
    }
    ep.task_types = ep.task_types ?? [...cfg.task_types];
    checkLabels(`manager.endpoints[${i}].labels`, ep.labels ?? {});
    ep.labels = { ...cfg.manager.labels, ...(ep.labels ?? {}) };
  });
  if (options.pathsFrom !== undefined) resolvePaths(cfg, options.pathsFrom);
  const commandTypes = Object.assign(Object.create(null) as Record<string, CommandType>, Object.fromEntries(commands));
  return deepFreeze({ ...cfg, command_types: commandTypes } as unknown as Config);
}
