/**
 * The errnr values tasker itself sets, and the limits of a result (docs/protocol.md "On the wire"). Apart
 * from protocol/wire.ts, which re-exports them, so that a handler's worker process (manager/pool-worker.ts)
 * loads these without compiling the protocol's schemas, which would add about half a second of CPU to
 * every worker's start.
 */

/** errnr values that tasker itself sets. Handlers use their own numbers (the seed's backup used 32). */
export const ERRNR_HANDLER_THREW = 1;
export const ERRNR_HANDLER_TIMEOUT = 124;
export const ERRNR_ATTEMPTS_EXHAUSTED = 125;
export const ERRNR_BAD_RESULT = 126;
/**
 * Set by the server side, never reported by an endpoint: the task's execution deadline (`timeout`) passed
 * while the endpoint was running it (shown with failure `timed_out`).
 */
export const ERRNR_DEADLINE_PASSED = 127;
/**
 * Command task types: an exit code other than 0 is the errnr itself (1 to 255); what is not an exit code
 * has a number above 255, so that it can never be mistaken for one. A command's timeout is the handler
 * timeout (124), so that it shows as `timed_out`.
 */
export const ERRNR_COMMAND_TIMEOUT = ERRNR_HANDLER_TIMEOUT;
/** The command was ended by a signal: a crash, an OOM kill, a kill by someone else, or tasker's own on a cancel or shutdown. */
export const ERRNR_COMMAND_SIGNALLED = 256;
/** The command could not be started: the program (or `cwd`) does not exist or is not executable. */
export const ERRNR_COMMAND_NOT_STARTED = 257;
/** The payload fails the type's `payload_schema` at the endpoint (a task not sent through this API's configuration). */
export const ERRNR_COMMAND_BAD_PAYLOAD = 258;
/**
 * The endpoint refused the task before running anything: its signature is missing, does not match, is by
 * a key the endpoint does not trust, or its deadline passed (protocol/task-signature.ts); errmsg says which.
 */
export const ERRNR_TASK_REFUSED = 259;
/**
 * The process of an isolated handler run (`manager.isolation: process`) ended under it: an exit, a fatal
 * signal, running out of heap (`manager.handler_max_heap_mb`). errmsg names the exit code or the signal.
 * Only that run fails: its delivery is acked with this result, so no other delivery counts an attempt.
 */
export const ERRNR_HANDLER_DIED = 260;

/** errmsg is a TEXT column (65,535 bytes): at most 4 bytes a character in utf8mb4. */
export const MAX_ERRMSG_CHARS = 16_000;
/** A result payload larger than this (as JSON) is refused: escaped, it must fit one MySQL packet. */
export const MAX_RESPONSE_PAYLOAD_BYTES = 4 * 1024 * 1024;
