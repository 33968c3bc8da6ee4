import type { Rollout, RolloutAmount } from './storage/rows';
import { ENDPOINT_STATE, EndpointState } from './lifecycle/states';

/** `"10%"`: a share of the expected endpoints. */
export const PERCENT_PATTERN = /^(100|[1-9]?[0-9])%$/;

export interface RolloutRequest {
  batch_size: RolloutAmount;
  max_errors?: RolloutAmount;
}

/**
 * A share of `n`: a number is taken as is, "P%" is P percent of n, rounded up (`up`) or down. Shares are
 * taken in integers (P·n/100 exactly), so that 10% of 30 is 3, not 3.0000000000000004 rounded up to 4.
 */
function amount(a: RolloutAmount, n: number, up: boolean): number {
  if (typeof a === 'number') return a;
  const m = PERCENT_PATTERN.exec(a);
  if (!m) throw new Error(`not a percentage: ${a}`);
  const share = Number(m[1]) * n;
  return up ? Math.ceil(share / 100) : Math.floor(share / 100);
}

/**
 * The rollout's numbers for a task with `expected` endpoints: the batch size rounded up and at least 1 (a
 * rollout always moves), the error budget rounded down (5% of 10 endpoints tolerates none).
 */
export function resolveRollout(req: RolloutRequest, expected: number): Rollout {
  const batch = Math.max(1, amount(req.batch_size, expected, true));
  const maxErrors = req.max_errors === undefined ? null : amount(req.max_errors, expected, false);
  return {
    batch_size: batch,
    max_errors: maxErrors,
    request: { batch_size: req.batch_size, ...(req.max_errors === undefined ? {} : { max_errors: req.max_errors }) },
  };
}

/** What the task shows of its rollout: its numbers and where it stands. */
export interface RolloutView {
  batch_size: number;
  max_errors: number | null;
  request: RolloutRequest;
  /** Endpoints sent the task so far (in their current round). */
  sent: number;
  /** Sent and not finished: the slots taken. */
  running: number;
  /** Waiting for a slot. */
  remaining: number;
  /** Failed or missing (since the last retry): what the error budget counts. */
  errors: number;
}

/** Counts per stored state → the rollout's progress. */
export function rolloutView(r: Rollout, expected: number, count: (state: EndpointState) => number): RolloutView {
  const S = ENDPOINT_STATE;
  return {
    batch_size: r.batch_size,
    max_errors: r.max_errors,
    request: r.request,
    sent: expected - count(S.QUEUED) - count(S.SKIPPED),
    running: count(S.PENDING) + count(S.RUNNING),
    remaining: count(S.QUEUED),
    errors: Math.max(0, count(S.FAILED) + count(S.MISSING) - (r.errors_before ?? 0)),
  };
}
