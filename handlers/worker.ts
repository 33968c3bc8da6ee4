import type { HandleTask } from '../manager/handler';
import { leak, misbehaviourOf, spin } from './misbehave';
import { simulateWork } from './simulate';

/**
 * The seed's worker: does its work, then answers with a fixed payload. On request it misbehaves after
 * its `sleep` (handlers/misbehave.ts): `spin` seconds of busy loop, then `leak`, then `exit`.
 */
export const handleTask: HandleTask = async (task, response) => {
  const misbehaviour = misbehaviourOf(task.payload);
  await simulateWork(task.payload, response);
  if (misbehaviour.spin !== undefined) spin(misbehaviour.spin);
  if (misbehaviour.leak === true) leak();
  if (misbehaviour.exit !== undefined) process.exit(misbehaviour.exit);
  response.payload = { yeah: 1234123, yiya: 'yippie' };
};
