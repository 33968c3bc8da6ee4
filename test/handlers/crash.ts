import type { HandleTask } from '../../manager/handler';

/** Poison work for the fault tests: takes the whole process down on every try, as a native crash would. */
export const handleTask: HandleTask = () => new Promise<void>(() => {
  setImmediate(() => { throw new Error('handler crashed the process'); });
});
