import { appendFileSync } from 'node:fs';
import type { HandleTask } from '../../manager/handler';
import { simulateWork } from '../../handlers/simulate';

/**
 * For the tests that count runs from the endpoint's side: appends a line when a run starts and when it
 * ends to the file named by TASKER_TEST_RUN_LOG (appends of one short line land whole and in order, so
 * the file's order is the order of the starts and ends, across the worker processes of a pool).
 */
export const handleTask: HandleTask = async (task, response) => {
  const file = process.env.TASKER_TEST_RUN_LOG;
  const mark = (event: 'start' | 'end'): void => {
    if (file) appendFileSync(file, `${JSON.stringify({ event, task: task.id, endpoint: response.endpoint, round: response.round, pid: process.pid, time: Date.now() })}\n`);
  };
  mark('start');
  try {
    await simulateWork(task.payload, response);
  } finally {
    mark('end');
  }
  response.payload = { round: response.round, cancelled: response.signal.aborted };
};
