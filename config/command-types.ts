import { Static, Type } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv/dist/2020';
import { createAjv, describeFailure, ERROR_KEYWORD } from '../lib/validation';
import { TASK_TYPE_PATTERN } from '../protocol/names';

/**
 * Command task types: a `task_types` entry given as a mapping (`{name, command, ...}`) instead of a name
 * runs a program rather than a handler module. Declared once here; the loader normalises them into a
 * list of names and a frozen table of definitions, which both the API (payload schemas) and the
 * managers (the runner) read.
 */

/** `{name}`: an argument that is exactly this is replaced by the payload's property `name`. */
export const PLACEHOLDER = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;
/** A placeholder inside a longer argument, which is refused (see `checkCommand`). */
const EMBEDDED_PLACEHOLDER = /\{[A-Za-z_][A-Za-z0-9_]*\}/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Characters kept of each stream by default: what AWS SSM's Run Command keeps in its API response. */
export const DEFAULT_STDOUT_CHARS = 24_000;
export const DEFAULT_STDERR_CHARS = 8_000;
/**
 * Most characters kept of one stream. A kept character is at most 6 bytes in the result's JSON (a control
 * character escaped as \u00XX), so both streams together stay well under the 4 MiB result limit.
 */
export const MAX_OUTPUT_CHARS = 256_000;

const outputLimit = (def: number) => Type.Integer({ default: def, minimum: 0, maximum: MAX_OUTPUT_CHARS });

export const CommandTypeSchema = Type.Object({
  name: Type.String({ pattern: TASK_TYPE_PATTERN.source, [ERROR_KEYWORD]: `must match ${TASK_TYPE_PATTERN.source}` }),
  /** The program and its arguments; `{property}` arguments are filled from the payload. */
  command: Type.Array(Type.String({ minLength: 1, [ERROR_KEYWORD]: 'must be a non-empty string' }), { minItems: 1, [ERROR_KEYWORD]: 'must be a non-empty list of strings' }),
  /** JSON Schema of the payload, checked at POST (400) and again before the command runs. */
  payload_schema: Type.Optional(Type.Object({}, { additionalProperties: true })),
  /** Seconds the command may run; `manager.handler_timeout` when absent. */
  timeout: Type.Optional(Type.Number({ minimum: 0.01, maximum: 86400 })),
  /** Working directory (absolute); the manager's own when absent. */
  cwd: Type.Optional(Type.String({ pattern: '^/', [ERROR_KEYWORD]: 'must be an absolute path' })),
  /** Names of the manager's environment variables passed to the command; no others are. */
  env: Type.Array(Type.String({ pattern: ENV_NAME.source, [ERROR_KEYWORD]: `must be a variable name (${ENV_NAME.source})` }), { default: ['PATH'], uniqueItems: true }),
  /** true: `command` is one string run by `/bin/sh -c`, as written: it takes no placeholders. */
  shell: Type.Boolean({ default: false }),
  output_limit: Type.Object({ stdout: outputLimit(DEFAULT_STDOUT_CHARS), stderr: outputLimit(DEFAULT_STDERR_CHARS) }, { additionalProperties: false, default: {} }),
  /** Run as this user (its uid and primary gid); needs a manager running as root. */
  user: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$', [ERROR_KEYWORD]: 'must be a user name' })),
}, { additionalProperties: false });

export type CommandType = Readonly<Static<typeof CommandTypeSchema>> & {
  readonly command: readonly string[];
  readonly env: readonly string[];
  readonly output_limit: Readonly<{ stdout: number; stderr: number }>;
};

/** Command task types by name: a table without a prototype, so that no type name can reach Object's members. */
export type CommandTypes = Readonly<Record<string, CommandType>>;

const validateEntry = createAjv({ useDefaults: true }).compile(CommandTypeSchema);
// Payload schemas are the operator's: strict, so that a misspelt keyword is an error rather than no check.
const compiled = new WeakMap<object, ValidateFunction>();

/**
 * A payload schema compiled once (at start), and the same validator at POST and before a run. Each with an
 * Ajv of its own: two types (or two loads of the configuration) may give their schemas the same `$id`.
 */
export function compilePayloadSchema(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    // Type and tuple hints are Ajv's warnings to the console only, not refusals: off.
    validate = createAjv({ allErrors: false, strictTypes: false, strictTuples: false }).compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** Where a payload fails its schema, as `payload.version must match pattern ...`. */
export function describePayloadFailure(validate: ValidateFunction): string {
  const f = describeFailure(validate.errors);
  const at = f.path === '' ? 'payload' : `payload.${f.path}`;
  return f.unknown ? `${at}: unknown field` : `${at} ${f.message}`;
}

export class CommandTypeError extends Error {
  constructor(readonly path: string, message: string) { super(message); }
}

/**
 * A `task_types[i]` mapping, validated and completed with its defaults. Throws a CommandTypeError naming
 * the key (`task_types[1].command[2]`) for the first thing wrong with it.
 */
export function parseCommandType(entry: unknown, at: string): CommandType {
  const copy = structuredClone(entry);
  if (!validateEntry(copy)) {
    const f = describeFailure(validateEntry.errors);
    throw new CommandTypeError(f.path === '' ? at : `${at}.${f.path}`, f.message);
  }
  const def = copy as CommandType;
  checkCommand(def, at);
  return def;
}

function checkCommand(def: CommandType, at: string): void {
  if (def.shell && def.command.length > 1) {
    throw new CommandTypeError(`${at}.command`, 'with shell: true must be one string (the script /bin/sh -c runs), not a list of arguments');
  }
  // A script is never filled from the payload: the shell would parse the values. Its braces (${HOME}) are its own.
  let validate: ValidateFunction | null = null;
  if (def.payload_schema !== undefined) {
    try {
      validate = compilePayloadSchema(def.payload_schema);
    } catch (err) {
      throw new CommandTypeError(`${at}.payload_schema`, `is not a valid JSON Schema: ${(err as Error).message}`);
    }
  }
  if (def.shell) return;
  const schema = (def.payload_schema ?? {}) as { properties?: Record<string, { type?: unknown }>; required?: unknown };
  const required = Array.isArray(schema.required) ? schema.required as unknown[] : [];
  def.command.forEach((arg, i) => {
    const key = `${at}.command[${i}]`;
    const whole = PLACEHOLDER.exec(arg);
    if (!whole) {
      if (EMBEDDED_PLACEHOLDER.test(arg)) {
        throw new CommandTypeError(key, `'${arg}': a placeholder must be a whole argument (write '--opt' and '{value}' as two arguments)`);
      }
      return;
    }
    if (i === 0) throw new CommandTypeError(key, 'the program itself cannot be a placeholder');
    const name = whole[1];
    if (!validate) throw new CommandTypeError(key, `placeholder {${name}} needs a payload_schema that declares '${name}'`);
    const prop = schema.properties?.[name];
    if (!prop) throw new CommandTypeError(key, `placeholder {${name}}: payload_schema has no property '${name}'`);
    if (!required.includes(name)) throw new CommandTypeError(key, `placeholder {${name}}: payload_schema must list '${name}' in required`);
    if (!['string', 'number', 'integer', 'boolean'].includes(String(prop.type))) {
      throw new CommandTypeError(key, `placeholder {${name}}: its property must have type string, number, integer or boolean`);
    }
  });
}

/** One argument's value: a payload value becomes exactly one argument, whatever characters it holds. */
function argumentOf(value: unknown, name: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`payload.${name} is ${value === undefined ? 'missing' : 'not a string, number or boolean'}`);
}

/**
 * The argument vector of a run: each `{name}` argument replaced by the payload's value, as one argument;
 * nothing else is touched. The payload must have passed the type's schema.
 */
export function fillPlaceholders(command: readonly string[], payload: unknown): string[] {
  const values = (typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload : {}) as Record<string, unknown>;
  return command.map((arg, i) => {
    const m = i === 0 ? null : PLACEHOLDER.exec(arg);
    return m ? argumentOf(Object.hasOwn(values, m[1]) ? values[m[1]] : undefined, m[1]) : arg;
  });
}
