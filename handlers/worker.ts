import type { HandleTask } from '../manager/handler';
import { leak, misbehaviourOf, spin } from './misbehave';
import { simulateWork } from './simulate';

/**
 * The seed's worker: does its work, then answers with a fixed payload. On request it misbehaves after
 * its `sleep` (handlers/misbehave.ts): `spin` seconds of busy loop, then `leak`, then `exit`.
 */
export const handleTask: HandleTask = async (task, response) => {
  const misbehaviour = misbehaviourOf(task.payload);
  // Said before the work, while this process's loop still runs: who to watch (`ps`, the tests) while it misbehaves.
  if (Object.keys(misbehaviour).length > 0) response.log(`process ${process.pid} will misbehave: ${JSON.stringify(misbehaviour)}`);
  await simulateWork(task.payload, response);
  if (misbehaviour.spin !== undefined) spin(misbehaviour.spin);
  if (misbehaviour.leak === true) leak();
  if (misbehaviour.exit !== undefined) process.exit(misbehaviour.exit);
  response.payload = { yeah: 1234123, yiya: 'yippie' };
};
