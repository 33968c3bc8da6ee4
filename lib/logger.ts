import { AsyncLocalStorage } from 'node:async_hooks';
import os from 'node:os';
import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What every line logged inside `logContext.run(...)` carries, wherever it is logged from: the HTTP request's id. */
export const logContext = new AsyncLocalStorage<{ req_id: string }>();

export interface LoggerOptions {
  /** Colored text, a line per entry, for a person at a terminal instead of JSON. */
  pretty?: boolean;
  /**
   * Where every line goes instead of stdout/stderr (tests). Otherwise debug and info go to stdout and warn
   * and error to stderr: the bench and the test harness drop the stdout of large fleets and keep stderr.
   */
  destination?: pino.DestinationStream;
}

/**
 * Synchronous writes, as before pino: a line is on its way before the next statement, so nothing is lost
 * when a process exits right after logging, and a reader (the test harness) sees a line as soon as it is logged.
 */
function output(fd: 1 | 2, human: boolean): pino.DestinationStream {
  // pm2's cluster mode replaces the streams' write() to carry lines to its log files over IPC; bytes
  // written to the file descriptor itself would go to its daemon's stdout, not to the app's log.
  const stream = fd === 1 ? process.stdout : process.stderr;
  if (Object.prototype.hasOwnProperty.call(stream, 'write')) {
    return human ? pretty({ destination: stream, colorize: false, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,process' }) : stream;
  }
  if (!human) return pino.destination({ dest: fd, sync: true });
  return pretty({ destination: fd, sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,process' });
}

/**
 * One JSON object per line (time as ISO 8601, level as its name, msg and the fields), so pm2 and log
 * shippers can parse them. Call style is pino's: `log.info({ taskId }, 'task finished')`.
 */
export function createLogger(base: Record<string, unknown> = {}, level: LogLevel = 'info', opts: LoggerOptions = {}): Logger {
  const destination = opts.destination ?? pino.multistream([
    { level: 'debug', stream: output(1, opts.pretty ?? false) },
    { level: 'warn', stream: output(2, opts.pretty ?? false) },
  ], { dedupe: true });
  return pino({
    level,
    // The host names the machine once a fleet's logs are gathered in one place.
    base: { pid: process.pid, hostname: os.hostname(), ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.errWithCause },
    // A new object each time: pino assigns the line's fields into what the mixin returns.
    mixin: () => ({ ...logContext.getStore() }),
  }, destination);
}
