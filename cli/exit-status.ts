import type { Counts, TaskStatus } from './types';

/** The exit statuses, for CI pipelines. */
export const EXIT = {
  /** The command did what was asked; for a task: every endpoint succeeded (or none failed so far). */
  OK: 0,
  /** Usage errors, an API that cannot be reached or that refused the request. */
  ERROR: 1,
  /** The task ended (or is running) with some endpoint failed. */
  FAILED: 2,
  /** The task is INCOMPLETE (some endpoint never answered), CANCELLED, or STOPPED (a rollout over its error budget). */
  UNFINISHED: 3,
} as const;

/** A failure of the command itself: its one-line reason goes to stderr, and the CLI exits with `code`. */
export class CliError extends Error {
  constructor(message: string, readonly code: number = EXIT.ERROR, readonly httpStatus?: number) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * The exit status a task gives: INCOMPLETE, CANCELLED or STOPPED 3 (whatever else happened: the task did not reach
 * all its endpoints), some endpoint failed 2, otherwise 0. A task still running counts what is known so far.
 */
export function taskExitStatus(task: { status: TaskStatus; responses: Pick<Counts, 'failed'> }): number {
  if (task.status === 'INCOMPLETE' || task.status === 'CANCELLED' || task.status === 'STOPPED') return EXIT.UNFINISHED;
  if (task.responses.failed > 0) return EXIT.FAILED;
  return EXIT.OK;
}

/** The one line on stderr that says why a task's status is not 0 (null when it is 0). */
export function taskExitReason(task: { type: string; identifier: string; status: TaskStatus; responses: Counts }): string | null {
  const code = taskExitStatus(task);
  if (code === EXIT.OK) return null;
  const c = task.responses;
  const parts = (['failed', 'missing', 'skipped', 'cancelled', 'pending', 'queued', 'running'] as const).filter((s) => (c[s] ?? 0) > 0).map((s) => `${c[s] ?? 0} ${s}`);
  return `${task.type}/${task.identifier} is ${task.status}${parts.length > 0 ? `: ${parts.join(', ')} of ${c.expected} endpoints` : ''}`;
}
