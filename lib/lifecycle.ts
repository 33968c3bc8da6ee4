import type { Logger } from './logger';

export interface ShutdownStep {
  name: string;
  run: () => Promise<unknown>;
}

/**
 * One idempotent shutdown: the steps run in order (intake, in-flight work, broker, database) and a
 * failing step is logged without stopping the others. Every later call returns the same promise.
 */
export function createShutdown(steps: ShutdownStep[], log: Logger): () => Promise<void> {
  let done: Promise<void> | null = null;
  return () => {
    done ??= (async () => {
      for (const step of steps) {
        try {
          await step.run();
        } catch (err) {
          log.warn({ step: step.name, err }, 'shutdown step failed');
        }
      }
      log.info('shut down');
    })();
    return done;
  };
}
