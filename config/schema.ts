/**
 * The configuration's shape, defaults and validation rules in one place. The loader merges
 * defaults, YAML and environment, then hands the result to `validateConfig`, which rejects
 * unknown keys and wrong types by their full dotted name.
 */

import { ENDPOINT_PATTERN, RESERVED_TASK_TYPES, TASK_TYPE_PATTERN } from '../protocol/names';

export { ENDPOINT_PATTERN, TASK_TYPE_PATTERN } from '../protocol/names';

/** Paths of the API that a task type would shadow (`/<task_type>`). */
export const RESERVED_ROUTES: readonly string[] = ['endpoints', 'events', 'schedules', 'metrics', 'healthz', 'readyz', 'ui', 'tokens'];

export interface EndpointConfig {
  readonly name: string;
  /** Task types this endpoint serves; all of `task_types` when absent. */
  readonly task_types: readonly string[];
}

export interface DbConfig {
  /** Empty for a process that needs no database (an endpoint manager). */
  readonly uri: string;
  readonly verbose: boolean;
  /** Optional superuser URI that initialize uses to create the database and the application user. */
  readonly admin_uri: string;
  readonly pool_size: number;
  /** Seconds to wait for a connection before answering 503. */
  readonly connect_timeout: number;
}

export interface MessageQueueConfig {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  readonly virtual_host: string;
  readonly exchange: string;
  readonly heartbeat: number;
  readonly prefetch: number;
  readonly queue_type: 'classic' | 'quorum';
}

export interface Config {
  readonly mode: string;
  readonly log_level: 'debug' | 'info' | 'warn' | 'error';
  readonly task_types: readonly string[];
  readonly api: {
    readonly host: string;
    readonly port: number;
    readonly wait_for_endpoints_timeout: number;
    readonly body_limit: number;
    readonly publish_timeout: number;
    readonly resend_interval: number;
    readonly resend_after: number;
    readonly sweep_interval: number;
    readonly shutdown_timeout: number;
    /** Endpoints silent for longer than this many seconds are no longer expected by tasks that list none. */
    readonly endpoint_expiry: number;
    /** How the server side knows which endpoint sent an event: the event's field, or the RabbitMQ user (`user_id`). */
    readonly endpoint_identity: 'shared_user' | 'per_endpoint_user';
    /** Most response events (or state requests) written in one transaction. */
    readonly collector_batch: number;
  };
  readonly manager: {
    /** How tasks travel: RabbitMQ, or in-process queues when API and managers share one process. */
    readonly transport: 'rabbitmq' | 'in-process';
    readonly endpoints: readonly EndpointConfig[];
    readonly handler_timeout: number;
    /** Seconds a first delivery's handler may run before its receipt (a status 0 row) is written; 0: always before. */
    readonly receipt_delay: number;
    /** Where `<task_type>` handler modules are, relative to the project (loaded compiled, from dist/). */
    readonly handlers_dir: string;
    readonly heartbeat_interval: number;
    readonly max_attempts: number;
    /** Seconds a manager waits for the server side's answer about a redelivered task before asking again. */
    readonly state_timeout: number;
    readonly shutdown_timeout: number;
    readonly db: DbConfig;
    readonly message_queue: MessageQueueConfig;
  };
  readonly rabbitmq: {
    readonly apiurl: string;
    readonly username: string;
    readonly password: string;
  };
}

type Rule =
  | { kind: 'string'; default?: string; pattern?: RegExp }
  | { kind: 'enum'; values: readonly string[]; default: string }
  | { kind: 'int'; default?: number; min: number; max: number }
  | { kind: 'number'; default?: number; min: number; max: number }
  | { kind: 'bool'; default: boolean }
  | { kind: 'list'; of: Rule; default?: unknown[] }
  | { kind: 'object'; fields: Record<string, Rule> }
  | { kind: 'endpoint' };

const str = (def?: string, pattern?: RegExp): Rule => ({ kind: 'string', default: def, pattern });
const int = (def: number | undefined, min: number, max: number): Rule => ({ kind: 'int', default: def, min, max });
const num = (def: number, min: number, max: number): Rule => ({ kind: 'number', default: def, min, max });

export const SCHEMA: Rule = {
  kind: 'object',
  fields: {
    mode: str(),
    log_level: { kind: 'enum', values: ['debug', 'info', 'warn', 'error'], default: 'info' },
    task_types: { kind: 'list', of: str(undefined, TASK_TYPE_PATTERN) },
    api: {
      kind: 'object',
      fields: {
        host: str('0.0.0.0'),
        port: int(8888, 0, 65535),
        wait_for_endpoints_timeout: num(60, 0.1, 86400 * 30),
        body_limit: int(1024 * 1024, 1024, 64 * 1024 * 1024),
        publish_timeout: num(5, 0.1, 600),
        resend_interval: num(5, 0.05, 3600),
        resend_after: num(10, 0, 3600),
        sweep_interval: num(5, 0.05, 3600),
        shutdown_timeout: num(10, 0.1, 600),
        endpoint_expiry: num(86400, 1, 86400 * 365),
        endpoint_identity: { kind: 'enum', values: ['shared_user', 'per_endpoint_user'], default: 'shared_user' },
        collector_batch: int(500, 1, 10_000),
      },
    },
    manager: {
      kind: 'object',
      fields: {
        transport: { kind: 'enum', values: ['rabbitmq', 'in-process'], default: 'rabbitmq' },
        endpoints: { kind: 'list', of: { kind: 'endpoint' }, default: [] },
        handler_timeout: num(300, 0.01, 86400),
        receipt_delay: num(0.25, 0, 60),
        handlers_dir: str('handlers', /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/),
        heartbeat_interval: num(10, 0.1, 3600),
        max_attempts: int(5, 1, 1000),
        state_timeout: num(10, 0.1, 600),
        shutdown_timeout: num(30, 0.1, 3600),
        db: {
          kind: 'object',
          fields: {
            uri: str(''),
            verbose: { kind: 'bool', default: false },
            admin_uri: str(''),
            pool_size: int(10, 1, 500),
            connect_timeout: num(3, 0.1, 120),
          },
        },
        message_queue: {
          kind: 'object',
          fields: {
            host: str('127.0.0.1'),
            port: int(5672, 1, 65535),
            username: str('guest'),
            password: str('guest'),
            virtual_host: str('/'),
            exchange: str('tasker', /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
            heartbeat: int(30, 0, 3600),
            prefetch: int(32, 1, 65535),
            queue_type: { kind: 'enum', values: ['classic', 'quorum'], default: 'classic' },
          },
        },
      },
    },
    rabbitmq: {
      kind: 'object',
      fields: {
        apiurl: str('http://127.0.0.1:15672/api'),
        username: str('guest'),
        password: str('guest'),
      },
    },
  },
};

/**
 * The longest handler_timeout with RabbitMQ, in seconds: its default `consumer_timeout` (30 minutes, since
 * 3.8.15) less a minute to commit the response and ack.
 */
export const RABBITMQ_MAX_HANDLER_TIMEOUT_S = 1800 - 60;

export class ConfigError extends Error {
  readonly code = 'config_invalid';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, message: string): never {
  throw new ConfigError(`config key '${path}': ${message}`);
}

function check(rule: Rule, value: unknown, path: string): unknown {
  if (rule.kind === 'object') {
    const input = value === undefined || value === null ? {} : value;
    if (!isPlainObject(input)) fail(path, 'must be a mapping');
    for (const key of Object.keys(input)) {
      if (!(key in rule.fields)) fail(path ? `${path}.${key}` : key, 'unknown key');
    }
    const out: Record<string, unknown> = {};
    for (const [key, sub] of Object.entries(rule.fields)) {
      out[key] = check(sub, input[key], path ? `${path}.${key}` : key);
    }
    return out;
  }
  if (value === undefined || value === null) {
    if ('default' in rule && rule.default !== undefined) return rule.default;
    fail(path, 'is required');
  }
  switch (rule.kind) {
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number') fail(path, 'must be a string');
      if (rule.pattern && !rule.pattern.test(String(value))) fail(path, `'${value}' does not match ${rule.pattern}`);
      return String(value);
    case 'enum':
      if (typeof value !== 'string' || !rule.values.includes(value)) fail(path, `must be one of ${rule.values.join(', ')}`);
      return value;
    case 'int':
    case 'number': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) fail(path, 'must be a number');
      if (rule.kind === 'int' && !Number.isInteger(n)) fail(path, 'must be an integer');
      if (n < rule.min || n > rule.max) fail(path, `must be between ${rule.min} and ${rule.max}`);
      return n;
    }
    case 'bool':
      if (value === 'true' || value === 'false') return value === 'true';
      if (typeof value !== 'boolean') fail(path, 'must be true or false');
      return value;
    case 'list':
      if (!Array.isArray(value)) fail(path, 'must be a list');
      return value.map((item, i) => check(rule.of, item, `${path}[${i}]`));
    case 'endpoint':
      return checkEndpoint(value, path);
  }
}

function checkEndpoint(value: unknown, path: string): unknown {
  if (typeof value === 'string') value = { name: value };
  if (!isPlainObject(value)) fail(path, 'must be an endpoint name or {name, task_types}');
  for (const key of Object.keys(value)) {
    if (key !== 'name' && key !== 'task_types') fail(`${path}.${key}`, 'unknown key');
  }
  const name = check(str(undefined, ENDPOINT_PATTERN), value.name, `${path}.name`);
  const types = value.task_types === undefined ? undefined
    : check({ kind: 'list', of: str(undefined, TASK_TYPE_PATTERN) }, value.task_types, `${path}.task_types`);
  return { name, task_types: types };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a merged raw configuration and returns it typed, completed with defaults, and frozen. */
export function validateConfig(raw: unknown): Config {
  const cfg = check(SCHEMA, raw, '') as {
    task_types: string[];
    api: { wait_for_endpoints_timeout: number };
    manager: { transport: string; handler_timeout: number; receipt_delay: number; endpoints: { name: string; task_types?: string[] }[] };
  };
  // RabbitMQ closes a channel whose delivery stays unacked longer than its consumer_timeout (30 minutes
  // by default), and with it every other delivery on that channel: a handler must finish well before.
  if (cfg.manager.transport === 'rabbitmq' && cfg.manager.handler_timeout > RABBITMQ_MAX_HANDLER_TIMEOUT_S) {
    fail('manager.handler_timeout', `must be at most ${RABBITMQ_MAX_HANDLER_TIMEOUT_S} s with RabbitMQ (its 30-minute consumer_timeout less a minute to commit and ack); got ${cfg.manager.handler_timeout}`);
  }
  if (cfg.manager.receipt_delay >= cfg.api.wait_for_endpoints_timeout) {
    fail('manager.receipt_delay', `must be shorter than api.wait_for_endpoints_timeout (${cfg.api.wait_for_endpoints_timeout} s)`);
  }
  if (cfg.task_types.length === 0) fail('task_types', 'must list at least one task type');
  cfg.task_types.forEach((t, i) => {
    if (RESERVED_TASK_TYPES.includes(t)) fail(`task_types[${i}]`, `'${t}' is reserved (${RESERVED_TASK_TYPES.join(', ')} name the server side's own queues)`);
    if (RESERVED_ROUTES.includes(t)) fail(`task_types[${i}]`, `'${t}' is reserved (${RESERVED_ROUTES.join(', ')} are routes of the API)`);
  });
  if (new Set(cfg.task_types).size !== cfg.task_types.length) fail('task_types', 'has duplicates');
  const seen = new Set<string>();
  cfg.manager.endpoints.forEach((ep, i) => {
    if (seen.has(ep.name)) fail(`manager.endpoints[${i}].name`, `endpoint '${ep.name}' listed twice`);
    seen.add(ep.name);
    for (const t of ep.task_types ?? []) {
      if (!cfg.task_types.includes(t)) fail(`manager.endpoints[${i}].task_types`, `'${t}' is not in task_types`);
    }
    ep.task_types = ep.task_types ?? [...cfg.task_types];
  });
  return deepFreeze(cfg as unknown as Config);
}
