import { Cron } from 'croner';
import { InvalidRequestError } from '../lib/errors';

/**
 * When a schedule fires: a cron expression read in an IANA time zone, or a fixed interval (`every`)
 * counted from the schedule's anchor. Both answer "the first scheduled time after t", which is all the
 * firing job needs.
 *
 * Daylight-saving transitions (cron only; an interval is a fixed number of seconds): a wall-clock time
 * that does not exist on the day the clocks go forward fires when the clocks show the hour after it
 * (02:30 in Europe/Berlin on 2026-03-29 fires at 03:30 CEST); a wall-clock time that happens twice on
 * the day they go back fires once, at its first occurrence (02:30 CEST on 2026-10-25, not 02:30 CET).
 */
export type Timing =
  | { kind: 'cron'; cron: string; timezone: string }
  | { kind: 'every'; seconds: number; anchor: Date };

export const EVERY_PATTERN = /^(?:[0-9]{1,7}[smhd])+$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** A year and a day: longer intervals are more likely a mistake than a plan. */
export const MAX_EVERY_SECONDS = 366 * 86400;

/** `90s`, `5m`, `1h30m`, `1d` → seconds; a 400 naming `every` otherwise. */
export function parseEvery(text: string): number {
  if (!EVERY_PATTERN.test(text)) throw new InvalidRequestError(`every: '${text}' is not a duration such as 30s, 5m, 1h30m or 1d`);
  let seconds = 0;
  for (const [, n, unit] of text.matchAll(/([0-9]+)([smhd])/g)) seconds += Number(n) * UNIT_SECONDS[unit];
  if (seconds < 1) throw new InvalidRequestError('every: must be at least 1s');
  if (seconds > MAX_EVERY_SECONDS) throw new InvalidRequestError('every: must be at most 366d');
  return seconds;
}

/**
 * The zone's name as given, in the case of its IANA spelling (`europe/berlin` → `Europe/Berlin`); a 400
 * naming `timezone` when it is not a zone. A link keeps its name (`Asia/Kolkata` does not become ICU's
 * `Asia/Calcutta`).
 */
export function canonicalTimezone(name: string): string {
  try {
    const resolved = new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
    return resolved.toLowerCase() === name.toLowerCase() ? resolved : name;
  } catch {
    throw new InvalidRequestError(`timezone: '${name}' is not an IANA time zone name such as UTC or Europe/Berlin`);
  }
}

/** A cron expression that parses and matches some time; a 400 naming `cron` otherwise. */
export function checkCron(cron: string, timezone: string, now: Date): Cron {
  let job: Cron;
  try {
    // Without a function to run, croner only computes times: no timer is started.
    job = new Cron(cron, { timezone, paused: true });
  } catch (err) {
    throw new InvalidRequestError(`cron: '${cron}' is not a cron expression (${(err as Error).message.replace(/^CronPattern: /, '')})`);
  }
  if (job.nextRun(now) === null) throw new InvalidRequestError(`cron: '${cron}' matches no time from now on`);
  return job;
}

const crons = new Map<string, Cron>();

function cronOf(cron: string, timezone: string): Cron {
  const key = `${timezone} ${cron}`;
  let job = crons.get(key);
  if (!job) {
    job = new Cron(cron, { timezone, paused: true });
    // Bounded: the schedules of one database, kept while the process lives.
    if (crons.size >= 10_000) crons.clear();
    crons.set(key, job);
  }
  return job;
}

/** The first scheduled time strictly after `after`; null when there is none (a cron of a past year). */
export function nextAfter(t: Timing, after: Date): Date | null {
  if (t.kind === 'every') {
    const period = t.seconds * 1000;
    const k = Math.max(1, Math.floor((after.getTime() - t.anchor.getTime()) / period) + 1);
    return new Date(t.anchor.getTime() + k * period);
  }
  const job = cronOf(t.cron, t.timezone);
  let next = job.nextRun(after);
  // Inside the second pass of an hour that repeats (the clocks went back), croner answers the first pass
  // of the next matching wall-clock time, which is past. Repeats do not fire: look on from the end of each
  // following quarter-hour (where every real transition ends) until the answer lies ahead.
  const base = Math.floor(after.getTime() / QUARTER_HOUR);
  for (let i = 1; next !== null && next <= after && i <= 16; i++) next = job.nextRun(new Date((base + i) * QUARTER_HOUR - 1));
  return next !== null && next <= after ? null : next;
}

const QUARTER_HOUR = 15 * 60_000;

/** `2026-11-24T10:15:00.000Z` → `20261124T101500Z`: only characters an identifier may hold. */
export function compactUtc(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** The identifier of the task a schedule creates for a scheduled time: the same on every API instance. */
export function firingIdentifier(name: string, scheduled: Date): string {
  return `${name}-${compactUtc(scheduled)}`;
}
