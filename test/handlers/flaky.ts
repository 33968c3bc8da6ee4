import type { HandleTask } from '../../manager/handler';
import { simulateWork } from '../../handlers/simulate';

/**
 * For the operator tests: fails (errnr 7) on the endpoints listed in `payload.fail`, the first time only
 * (a retry succeeds), and reports the round it ran in.
 */
export const handleTask: HandleTask = async (task, response) => {
  await simulateWork(task.payload, response);
  const fail = (task.payload as { fail?: string[] } | null)?.fail ?? [];
  if (fail.includes(response.endpoint) && response.round === 0) {
    response.errnr = 7;
    response.errmsg = 'failed as asked';
    return;
  }
  response.payload = { round: response.round, cancelled: response.signal.aborted };
};
