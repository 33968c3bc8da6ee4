import type { HandleTask } from '../manager/handler';
import { simulateWork } from './simulate';

/** The seed's backup: tries, then reports that it could not back up. */
export const handleTask: HandleTask = async (task, response) => {
  await simulateWork(task.payload, response);
  response.errnr = 32;
  response.errmsg = 'could not backup!';
};
