import { parseArgs, ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, packageVersion } from '../config/loader';
import type { Config } from '../config/schema';
import { createShutdown, ShutdownStep } from '../lib/lifecycle';
import { createLogger, Logger } from '../lib/logger';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface MainInput {
  config: Config;
  logger: Logger;
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/**
 * The frame of every entry point: arguments (`--mode` always), configuration, logging, signals and
 * pm2's ready message. `run` starts the process's parts and returns its shutdown steps; a second
 * SIGINT/SIGTERM exits at once.
 */
export function main(
  name: string, options: Options, run: (input: MainInput) => Promise<ShutdownStep[] | void>, defaultMode?: string,
  frame: {
    allowPositionals?: boolean; prettyLogsInTerminal?: boolean; readSigningKey?: boolean;
    /** `--config FILE` (or none) instead of a mode of config/, and `--version` (the endpoint package's entry). */
    ownConfigFile?: boolean;
  } = {},
): void {
  let values: MainInput['values'];
  let positionals: string[];
  let config: Config;
  try {
    const own: Options = frame.ownConfigFile === true ? { config: { type: 'string' }, version: { type: 'boolean' } } : {};
    ({ values, positionals } = parseArgs({ options: { mode: { type: 'string' }, ...own, ...options }, strict: true, allowPositionals: frame.allowPositionals ?? false }));
    if (values.version === true) {
      process.stdout.write(`${packageVersion()}\n`);
      process.exit(0);
    }
    config = loadConfig({
      mode: (values.mode as string | undefined) ?? process.env.TASKER_MODE ?? defaultMode, readSigningKey: frame.readSigningKey,
      ...frame.ownConfigFile === true ? { source: { file: values.config as string | undefined } } : {},
    });
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  // Only where a person is reading: pm2, pipes and files get JSON lines.
  const pretty = (frame.prettyLogsInTerminal ?? false) && process.stdout.isTTY === true;
  const logger = createLogger({ process: name }, config.log_level, { pretty });
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  run({ config, logger, values, positionals }).then((steps) => {
    if (!steps) return;
    const shutdown = createShutdown(steps, logger);
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn({ signal }, 'second signal, exiting now');
        process.exit(1);
      }
      signalled = true;
      logger.info({ signal }, 'shutting down');
      void shutdown().then(() => process.exit(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // pm2 sends 'shutdown' on Windows and in some reload paths instead of a signal.
    process.on('message', (msg) => { if (msg === 'shutdown') onSignal('SIGTERM'); });
    process.send?.('ready');
  }, (err: unknown) => {
    logger.error({ err }, `${name} failed to start`);
    process.stderr.write(`${name}: ${err instanceof ConfigError || err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

/** The API and the managers can run as separate processes only when a broker joins them. */
export function requireSharedTransport(config: Config): void {
  if (config.manager.transport === 'in-process') {
    throw new Error(`mode '${config.mode}' uses in-process queues: run API and managers together with \`npm start -- --mode ${config.mode}\``);
  }
}
