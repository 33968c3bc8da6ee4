import type { HandleTask } from '../manager/handler';
import { simulateWork } from './simulate';

/** The seed's worker: does its work, then answers with a fixed payload. */
export const handleTask: HandleTask = async (task, response) => {
  await simulateWork(task.payload, response);
  response.payload = { yeah: 1234123, yiya: 'yippie' };
};
