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
    let mod: unknown;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(path.join(dir, type));
    } catch (err) {
      throw new Error(`task type '${type}': no handler module ${type} in ${dir}`, { cause: err });
    }
    if (!isHandlerModule(mod)) throw new Error(`handler module ${type} in ${dir} does not export handleTask(task, response)`);
    handlers.set(type, mod);
  }
  return handlers;
}
