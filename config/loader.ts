import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadTlsMaterial, TlsFileError } from '../lib/tls-files';
import type { KeyObject } from 'node:crypto';
import { parseLabelList } from '../protocol/labels';
import { parsePrivateKey, SigningKeyError } from '../protocol/task-signature';
import { Config, ConfigError, validateConfig } from './schema';

export { Config, ConfigError } from './schema';

/** The project root: where package.json and config/ live, both from sources and from dist/. */
export function projectRoot(): string {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + __dirname);
    dir = parent;
  }
  return dir;
}

const MODE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
const ENV_PREFIX = 'TASKER_';
/** Top-level keys that an environment variable without `__` sets. */
const TOP_LEVEL_KEYS = new Set(['TASK_TYPES', 'LOG_LEVEL']);

/** Replaces `${VAR}` and `${VAR:-default}` with values from the environment. */
export function interpolate(text: string, env: NodeJS.ProcessEnv, file: string): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, def?: string) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    throw new ConfigError(`${file}: environment variable ${name} is not set and has no default`);
  });
}

function setPath(target: Record<string, unknown>, keys: string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

/**
 * Environment overrides: `TASKER_API__PORT=9000` sets `api.port`; `__` separates levels. Values are
 * read as YAML scalars or flow collections, so `TASKER_TASK_TYPES='[worker]'` and `TASKER_LOG_LEVEL=warn` work.
 */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || name === 'TASKER_MODE') continue;
    const rest = name.slice(ENV_PREFIX.length);
    if (!rest.includes('__') && !TOP_LEVEL_KEYS.has(rest)) continue; // other TASKER_* variables feed ${VAR} only
    const keys = rest.toLowerCase().split('__');
    let parsed: unknown;
    try {
      parsed = YAML.parse(value);
    } catch {
      parsed = value;
    }
    // Strings stay strings: a password like 123 must not turn into a number.
    if (typeof parsed === 'number' && /password|username|virtual_host|uri/.test(keys[keys.length - 1])) parsed = value;
    setPath(raw, keys, parsed);
  }
}

/**
 * `TASKER_LABELS=role=web,region=eu`: labels for the endpoints of one process (a manager started by
 * hand or by pm2), over `manager.labels` of the file.
 */
export function applyLabelList(raw: Record<string, unknown>, text: string | undefined): void {
  if (text === undefined || text.trim() === '') return;
  let labels: Record<string, string>;
  try {
    labels = parseLabelList(text);
  } catch (err) {
    throw new ConfigError(`TASKER_LABELS: ${(err as Error).message}`);
  }
  const manager = (typeof raw.manager === 'object' && raw.manager !== null && !Array.isArray(raw.manager) ? raw.manager : (raw.manager = {})) as Record<string, unknown>;
  const current = typeof manager.labels === 'object' && manager.labels !== null ? manager.labels as Record<string, unknown> : {};
  manager.labels = { ...current, ...labels };
}

export interface LoadOptions {
  mode?: string;
  env?: NodeJS.ProcessEnv;
  configDir?: string;
  /** false: `api.signing.private_key` is not read at load (`npm run keys -- create` is what makes it). */
  readSigningKey?: boolean;
  /**
   * The endpoint package's way (docs/endpoint-host.md): this YAML file (else `TASKER_CONFIG`'s, else none:
   * the defaults and the environment only) instead of `config/<mode>.config.yaml`; relative paths in it
   * are taken from the file's folder (with no file, from the current folder).
   */
  source?: { file?: string };
}

/** The default mode name of a configuration given by a file of one's own, or by the environment alone. */
export const OWN_FILE_MODE = 'endpoint';

function readYamlFile(file: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = YAML.parse(interpolate(readFileSync(file, 'utf8'), env, file)) ?? {};
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: ${code === 'ENOENT' ? 'does not exist' : (err as Error).message}`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: must be a mapping`);
  const merged = raw as Record<string, unknown>;
  if ('mode' in merged) throw new ConfigError(`config key 'mode': set by --mode or TASKER_MODE, not in the file`);
  return merged;
}

/** Defaults, then `config/<mode>.config.yaml`, then the environment; validated once and frozen. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const own = options.source;
  const mode = options.mode ?? env.TASKER_MODE ?? (own ? OWN_FILE_MODE : 'development');
  if (!MODE_PATTERN.test(mode)) throw new ConfigError(`run mode '${mode}' is not a valid mode name`);
  let merged: Record<string, unknown>;
  let pathsFrom: string | undefined;
  if (own) {
    const given = own.file ?? env.TASKER_CONFIG;
    const file = given === undefined || given === '' ? null : path.resolve(given);
    merged = file === null ? {} : readYamlFile(file, env);
    pathsFrom = file === null ? process.cwd() : path.dirname(file);
  } else {
    const dir = options.configDir ?? path.join(projectRoot(), 'config');
    const file = path.join(dir, `${mode}.config.yaml`);
    if (!existsSync(file)) throw new ConfigError(`run mode '${mode}': ${file} does not exist`);
    merged = readYamlFile(file, env);
  }
  applyEnvOverrides(merged, env);
  applyLabelList(merged, env.TASKER_LABELS);
  merged.mode = mode;
  const config = validateConfig(merged, { pathsFrom });
  checkTlsFiles(config);
  if (config.api.signing.private_key !== '' && options.readSigningKey !== false) loadSigningKey(config);
  return config;
}

/**
 * The key of `api.signing.private_key`, read and checked (a missing file, a key of the wrong type) with
 * the key named, at load so that a wrong one stops the start.
 */
export function loadSigningKey(config: Config): KeyObject {
  const file = config.api.signing.private_key;
  let pem: Buffer;
  try {
    pem = readFileSync(path.resolve(projectRoot(), file));
  } catch (err) {
    throw new ConfigError(`config key 'api.signing.private_key': cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    return parsePrivateKey(pem);
  } catch (err) {
    if (err instanceof SigningKeyError) throw new ConfigError(`config key 'api.signing.private_key': ${file} ${err.message}`, { cause: err });
    throw err;
  }
}

/** The TLS files, read and checked once at start, so that a wrong one is named before anything connects. */
function checkTlsFiles(config: Config): void {
  const sections = [[config.manager.message_queue.tls, 'manager.message_queue.tls'], [config.manager.db.tls, 'manager.db.tls']] as const;
  for (const [tls, prefix] of sections) {
    if (!tls.enabled) continue;
    try {
      loadTlsMaterial(tls, prefix, projectRoot());
    } catch (err) {
      if (err instanceof TlsFileError) throw new ConfigError(`config key '${err.key}': ${err.message}`, { cause: err });
      throw err;
    }
  }
}

/** The version in package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
