import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadTlsMaterial, TlsFileError } from '../lib/tls-files';
import { parseLabelList } from '../protocol/labels';
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
}

/** Defaults, then `config/<mode>.config.yaml`, then the environment; validated once and frozen. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const mode = options.mode ?? env.TASKER_MODE ?? 'development';
  if (!MODE_PATTERN.test(mode)) throw new ConfigError(`run mode '${mode}' is not a valid mode name`);
  const dir = options.configDir ?? path.join(projectRoot(), 'config');
  const file = path.join(dir, `${mode}.config.yaml`);
  if (!existsSync(file)) throw new ConfigError(`run mode '${mode}': ${file} does not exist`);
  let raw: unknown;
  try {
    raw = YAML.parse(interpolate(readFileSync(file, 'utf8'), env, file)) ?? {};
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: must be a mapping`);
  const merged = raw as Record<string, unknown>;
  if ('mode' in merged) throw new ConfigError(`config key 'mode': set by --mode or TASKER_MODE, not in the file`);
  applyEnvOverrides(merged, env);
  applyLabelList(merged, env.TASKER_LABELS);
  merged.mode = mode;
  const config = validateConfig(merged);
  checkTlsFiles(config);
  return config;
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
