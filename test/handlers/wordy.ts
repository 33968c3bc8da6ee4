import type { HandleTask } from '../../manager/handler';

/** The longest errmsg these tests send (allowed: see MAX_ERRMSG_CHARS), so that each event is large. */
export const WORDY_ERRMSG_CHARS = 16_000;

/** For the event stream tests: fails at once with a long errmsg, as a careless endpoint may. */
export const handleTask: HandleTask = async (_task, response) => {
  response.errnr = 3;
  response.errmsg = 'e'.repeat(WORDY_ERRMSG_CHARS);
};
