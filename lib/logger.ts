/** One JSON object per line on stdout/stderr, so pm2 and log shippers can parse them. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (err.cause !== undefined) out.cause = serializeError(err.cause);
  return out;
}

/** A class, not closures: a child is made per message, so making one must cost next to nothing. */
class JsonLogger implements Logger {
  constructor(private readonly base: LogFields, private readonly level: LogLevel, private readonly min: number) {}

  private write(lvl: LogLevel, msg: string, fields?: LogFields): void {
    if (LEVELS[lvl] < this.min) return;
    const entry: LogFields = { time: new Date().toISOString(), level: lvl, msg, ...this.base };
    for (const [k, v] of Object.entries(fields ?? {})) entry[k] = k === 'err' ? serializeError(v) : v;
    (LEVELS[lvl] >= LEVELS.warn ? process.stderr : process.stdout).write(JSON.stringify(entry) + '\n');
  }

  debug(msg: string, fields?: LogFields): void { this.write('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.write('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.write('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.write('error', msg, fields); }

  child(fields: LogFields): Logger {
    return new JsonLogger({ ...this.base, ...fields }, this.level, this.min);
  }
}

export function createLogger(base: LogFields = {}, level: LogLevel = 'info'): Logger {
  return new JsonLogger(base, level, LEVELS[level]);
}
