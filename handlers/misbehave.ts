/**
 * The misbehaviours the example `worker` handler acts out on request (docs/handlers.md "Isolation"), so that the
 * guarantees of isolated runs can be shown with curl: `exit` (the process exits with that code),
 * `spin` (seconds of a synchronous busy loop that ignores the signal), `leak` (allocates until the heap
 * limit). Run in-process (`manager.isolation: none`), each hurts the manager itself, as it would.
 */
export interface Misbehaviour {
  exit?: number;
  spin?: number;
  leak?: boolean;
}

/** Reads the misbehaviour fields of a payload; a bad value is an error naming the field. */
export function misbehaviourOf(payload: unknown): Misbehaviour {
  const p = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
  const out: Misbehaviour = {};
  if (p.exit !== undefined) {
    if (typeof p.exit !== 'number' || !Number.isInteger(p.exit) || p.exit < 0 || p.exit > 255) throw new Error('payload.exit must be a whole number from 0 to 255');
    out.exit = p.exit;
  }
  if (p.spin !== undefined) {
    if (typeof p.spin !== 'number' || !(p.spin >= 0 && p.spin <= 86_400)) throw new Error('payload.spin must be a number of seconds from 0 to 86400');
    out.spin = p.spin;
  }
  if (p.leak !== undefined) {
    if (typeof p.leak !== 'boolean') throw new Error('payload.leak must be true or false');
    out.leak = p.leak;
  }
  return out;
}

/** A synchronous busy loop: nothing else of this process runs meanwhile (no timer, no abort, no IPC). */
export function spin(seconds: number): void {
  const until = Date.now() + seconds * 1000;
  let x = 0;
  while (Date.now() < until) x += Math.random();
  if (x < 0) throw new Error('unreachable');
}

/** Allocates heap (arrays of numbers, not Buffers, which live outside it) until V8 gives up. */
export function leak(): never {
  const hoard: number[][] = [];
  // Large steps: few collections on the way, so that the limit is reached in well under a second.
  for (;;) hoard.push(new Array<number>(4_000_000).fill(hoard.length + 0.5));
}
