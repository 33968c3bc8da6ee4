import type { HandleTask } from '../../manager/handler';

/**
 * For the output tests: writes `payload.lines` lines with response.log, `payload.gap` ms apart, then a
 * formatted value and a text of two lines, and succeeds.
 */
export const handleTask: HandleTask = async (task, response) => {
  const { lines = 3, gap = 0 } = (task.payload ?? {}) as { lines?: number; gap?: number };
  for (let i = 1; i <= lines; i++) {
    response.log('step %d of %d', i, lines);
    if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
  }
  response.log({ done: true });
  response.log('two\nlines');
  response.payload = { logged: lines };
};
