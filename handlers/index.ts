import path from 'node:path';
import { TASK_TYPE_PATTERN } from '../config/schema';
import { HandlerModule, isHandlerModule } from '../manager/handler';

/**
 * Loads `<dir>/<task_type>` (default: this folder) for configured task types only. The names come from
 * the validated configuration, never from a request or a message.
 */
export function loadHandlers(taskTypes: readonly string[], dir: string = __dirname): Map<string, HandlerModule> {
  const handlers = new Map<string, HandlerModule>();
  for (const type of taskTypes) {
    if (!TASK_TYPE_PATTERN.test(type)) throw new Error(`'${type}' is not a task type name`);
    let file: string;
    try {
      file = require.resolve(path.join(dir, type));
    } catch (err) {
      throw new Error(`task type '${type}': no handler module ${type} in ${dir} (${type}.js, compiled)`, { cause: err });
    }
    let mod: unknown;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(file);
    } catch (err) {
      // Its own fault (a syntax error, a module it needs missing), not a missing handler: said as such.
      throw new Error(`task type '${type}': handler module ${file} failed to load: ${(err as Error).message}`, { cause: err });
    }
    if (!isHandlerModule(mod)) throw new Error(`task type '${type}': handler module ${file} does not export handleTask(task, response)`);
    handlers.set(type, mod);
  }
  return handlers;
}
