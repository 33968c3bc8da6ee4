import { TASK_TYPE_PATTERN } from '../config/schema';
import { HandlerModule, isHandlerModule } from '../manager/handler';

/**
 * Loads `handlers/<task_type>` for configured task types only. The names come from the validated
 * configuration, never from a request or a message.
 */
export function loadHandlers(taskTypes: readonly string[]): Map<string, HandlerModule> {
  const handlers = new Map<string, HandlerModule>();
  for (const type of taskTypes) {
    if (!TASK_TYPE_PATTERN.test(type)) throw new Error(`'${type}' is not a task type name`);
    let mod: unknown;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(`./${type}`);
    } catch (err) {
      throw new Error(`task type '${type}': no handler module handlers/${type}.ts`, { cause: err });
    }
    if (!isHandlerModule(mod)) throw new Error(`handlers/${type}.ts does not export handleTask(task, response)`);
    handlers.set(type, mod);
  }
  return handlers;
}
