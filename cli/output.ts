import YAML from 'yaml';
import { type EndpointView, TaskTracker } from './tracker';
import type { DeliveryInfo, EndpointInfo, EndpointState, ScheduleInfo, Task, TokenInfo, WebhookInfo } from './types';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Tables for a person at a terminal, JSON for programs (a pipe, a file, CI). */
export function defaultFormat(stdoutIsTTY: boolean): OutputFormat {
  return stdoutIsTTY ? 'table' : 'json';
}

/** The API's answer as JSON or YAML, or the table made for it. */
export function render(format: OutputFormat, data: unknown, table: () => string[]): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (format === 'yaml') return YAML.stringify(data);
  const lines = table();
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

// ---- colour (only at a terminal, and not with NO_COLOR)

const CODES: Record<string, [number, number]> = { green: [32, 39], red: [31, 39], yellow: [33, 39], cyan: [36, 39], dim: [2, 22], bold: [1, 22] };
export type Paint = (style: keyof typeof CODES, text: string) => string;
export const plain: Paint = (_style, text) => text;
export const ansi: Paint = (style, text) => `\x1b[${CODES[style][0]}m${text}\x1b[${CODES[style][1]}m`;

const STATE_STYLE: Record<EndpointState, keyof typeof CODES> = {
  pending: 'dim', running: 'cyan', succeeded: 'green', failed: 'red', missing: 'yellow', cancelled: 'yellow', queued: 'dim', skipped: 'yellow',
};
const STATUS_STYLE: Record<string, keyof typeof CODES> = { CREATED: 'dim', SENT: 'cyan', DONE: 'green', INCOMPLETE: 'yellow', CANCELLED: 'yellow', STOPPED: 'red' };

// ---- tables

// eslint-disable-next-line no-control-regex
const ANSI_PATTERN = /(\x1b\[[0-9;]*m)/;
const visibleLength = (s: string): number => s.split(ANSI_PATTERN).filter((p) => !p.startsWith('\x1b[')).join('').length;

/** Columns aligned on the widest cell, two spaces apart, no trailing blanks. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i] - visibleLength(c)))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** Cuts a line to the terminal's width (colour codes do not count) so that it never wraps. */
export function fit(line: string, columns: number): string {
  if (visibleLength(line) <= columns) return line;
  let out = '';
  let room = Math.max(0, columns - 1);
  for (const part of line.split(ANSI_PATTERN)) {
    if (part.startsWith('\x1b[')) out += part;
    else {
      out += part.slice(0, room);
      room -= Math.min(part.length, room);
    }
  }
  // A colour cut off in the middle must not run on into the next line.
  return `${out}…${line.includes('\x1b[') ? '\x1b[0m' : ''}`;
}

/** `[#######.............]`: finished of expected. */
export function bar(finished: number, expected: number, width = 30): string {
  const full = expected === 0 ? width : Math.round((finished / expected) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

// ---- a task

/**
 * The two lines above a task's endpoints: what, status, a bar of finished/expected (narrower on a narrow
 * terminal, down to 10 characters); the count of each state.
 */
export function taskHeader(t: TaskTracker | Task, paint: Paint = plain, columns = Infinity): string[] {
  // A task as the API answered it carries its counts; a followed one counts its endpoints.
  const c = t instanceof TaskTracker ? t.counts() : t.responses;
  // A rollout's states show only where there are some, so that other tasks read as they always did.
  const states = (['pending', 'running', 'succeeded', 'failed', 'missing', 'cancelled', 'queued', 'skipped'] as const)
    .filter((s) => (s !== 'queued' && s !== 'skipped') || (c[s] ?? 0) > 0);
  const rollout = t instanceof TaskTracker ? t.rollout : t.rollout ?? null;
  const name = `${t.type}/${t.identifier}`;
  const done = `${c.finished}/${c.expected} finished`;
  const width = Math.max(10, Math.min(30, columns - 1 - `${name}  ${t.status}  [] ${done}`.length));
  return [
    `${paint('bold', name)}  ${paint(STATUS_STYLE[t.status] ?? 'bold', t.status)}  ${bar(c.finished, c.expected, width)} ${done}`,
    states.map((s) => ((c[s] ?? 0) > 0 ? paint(STATE_STYLE[s], `${s} ${c[s] ?? 0}`) : `${s} ${c[s] ?? 0}`)).join('  '),
    ...(rollout ? [`rollout: ${rollout.batch_size} at a time, ${rollout.max_errors === null ? 'no error limit' : `stops once more than ${rollout.max_errors} fail`}`] : []),
    ...deadlineLine(t),
  ];
}

/** `timeout: 300 s, deadline 2026-11-24T12:05:00.000Z` (the deadline once the task was sent, or its creation's until then). */
function deadlineLine(t: TaskTracker | Task): string[] {
  const timeout = t instanceof TaskTracker ? t.timeout : t.timeout ?? null;
  if (timeout === null) return [];
  const deadline = t.deadline ?? null;
  return [`timeout: ${timeout} s${deadline ? `, deadline ${deadline}` : ''}`];
}

/** One line: `worker/deploy-42 SENT: 1/3 finished (pending 1, running 1, failed 1)`. */
export function taskSummary(t: TaskTracker): string {
  const c = t.counts();
  const states = (['pending', 'running', 'succeeded', 'failed', 'missing', 'cancelled', 'queued', 'skipped'] as const).filter((s) => c[s] > 0).map((s) => `${s} ${c[s]}`);
  return `${t.type}/${t.identifier} ${t.status}: ${c.finished}/${c.expected} finished (${states.join(', ')})`;
}

const RANK: Record<EndpointState, number> = { failed: 0, running: 1, missing: 2, skipped: 3, cancelled: 3, pending: 4, queued: 5, succeeded: 6 };

/**
 * The endpoints to show when not all fit in `max` lines (a fleet): the failed first, then the running,
 * the missing, the cancelled, the pending, the succeeded, the most recently changed first within each;
 * the chosen ones in the task's order. Returns them and a line that sums up the rest.
 */
export function chooseEndpoints(t: TaskTracker, max: number): { shown: EndpointView[]; rest: string | null } {
  const all = [...t.endpoints.values()];
  if (all.length <= max) return { shown: all, rest: null };
  const room = Math.max(0, max - 1);
  const ranked = all.map((e, index) => ({ e, index })).sort((a, b) => RANK[t.shown(a.e)] - RANK[t.shown(b.e)] || b.e.changed - a.e.changed || a.index - b.index);
  const chosen = ranked.slice(0, room).sort((a, b) => a.index - b.index).map((x) => x.e);
  const others = new Map<EndpointState, number>();
  for (const { e } of ranked.slice(room)) others.set(t.shown(e), (others.get(t.shown(e)) ?? 0) + 1);
  const sums = [...others].sort((a, b) => RANK[a[0]] - RANK[b[0]]).map(([s, n]) => `${n} ${s}`).join(', ');
  return { shown: chosen, rest: `… and ${all.length - room} more endpoints: ${sums}` };
}

export const ENDPOINT_HEADERS = ['ENDPOINT', 'STATE', 'ROUND', 'ATTEMPTS', 'ERRNR', 'RESULT'];

/** The longest payload shown in a table cell; `--format json` has all of it. */
const PAYLOAD_CHARS = 100;

/** A result's payload on one line: compact JSON, cut at PAYLOAD_CHARS. */
export function payloadCell(payload: unknown): string {
  if (payload === undefined || payload === null) return '';
  const text = JSON.stringify(payload);
  return text.length > PAYLOAD_CHARS ? `${text.slice(0, PAYLOAD_CHARS - 1)}…` : text;
}

export function endpointRow(t: TaskTracker, e: EndpointView, paint: Paint = plain): string[] {
  const state = t.shown(e);
  const message = state === 'succeeded' ? payloadCell(e.payload) : state === 'failed' ? e.errmsg ?? '' : state === 'missing' ? 'never answered' : state === 'cancelled' ? 'skipped: task cancelled' : state === 'skipped' ? 'never sent: rollout stopped' : state === 'queued' ? 'waiting for a rollout slot' : '';
  return [e.endpoint, paint(STATE_STYLE[state], state), String(e.round), String(e.attempt), e.errnr === null ? '-' : String(e.errnr), message];
}

/** A task as a table: its header, then a row per endpoint (at most `maxRows`, see chooseEndpoints). */
export function taskTable(t: TaskTracker, o: { maxRows?: number; columns?: number; paint?: Paint } = {}): string[] {
  const paint = o.paint ?? plain;
  const { shown, rest } = chooseEndpoints(t, o.maxRows ?? Infinity);
  return [...taskHeader(t, paint, o.columns), ...table(ENDPOINT_HEADERS, shown.map((e) => endpointRow(t, e, paint))), ...(rest ? [rest] : [])];
}

// ---- lists

const time = (iso: string | null): string => (iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

export function taskListTable(tasks: Task[], nextCursor: string | null): string[] {
  const rows = tasks.map((t) => [
    t.identifier, t.status, String(t.responses.expected), String(t.responses.succeeded), String(t.responses.failed),
    String(t.responses.missing), String(t.responses.pending + t.responses.running), time(t.start_time),
  ]);
  const lines = table(['IDENTIFIER', 'STATUS', 'EXPECTED', 'SUCCEEDED', 'FAILED', 'MISSING', 'UNFINISHED', 'STARTED'], rows);
  if (nextCursor !== null) lines.push(`more: --cursor ${nextCursor}`);
  return lines;
}

/** `region=eu,role=web`, keys sorted, as `-l` takes them; `-` for none. */
function labelList(labels: Readonly<Record<string, string>> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  return keys.length === 0 ? '-' : keys.map((k) => `${k}=${(labels as Record<string, string>)[k]}`).join(',');
}

export function endpointsTable(endpoints: EndpointInfo[], nextCursor: string | null): string[] {
  const rows = endpoints.map((e) => [
    e.name, e.alive ? 'yes' : 'no', e.stale ? 'yes' : 'no', time(e.last_heartbeat), time(e.first_seen), e.task_types.join(','), labelList(e.labels),
  ]);
  const lines = table(['NAME', 'ALIVE', 'STALE', 'LAST HEARTBEAT', 'FIRST SEEN', 'TASK TYPES', 'LABELS'], rows);
  if (nextCursor !== null) lines.push(`more: --cursor ${nextCursor}`);
  return lines;
}

export function tokensTable(tokens: TokenInfo[]): string[] {
  return table(['NAME', 'SCOPES', 'CREATED', 'LAST USED', 'REVOKED'],
    tokens.map((t) => [t.name, t.scopes.join(','), time(t.created_time), time(t.last_used_time), time(t.revoked_time)]));
}

export function schedulesTable(schedules: ScheduleInfo[]): string[] {
  return table(['NAME', 'TYPE', 'WHEN', 'TIMEZONE', 'NEXT FIRING', 'PAUSED', 'LAST TASK', 'LAST ERROR'], schedules.map((s) => [
    s.name, s.task_type, s.cron ?? `every ${s.every}`, s.timezone, s.paused ? 'paused' : time(s.next_fire_time), s.paused ? 'yes' : 'no',
    s.last_task_identifier ?? '-', s.last_error ?? '-',
  ]));
}

export function webhooksTable(hooks: WebhookInfo[]): string[] {
  return table(['ID', 'URL', 'EVENTS', 'TYPES', 'SELECTOR', 'ENABLED', 'FAILING SINCE', 'DESCRIPTION'], hooks.map((w) => [
    String(w.id), w.url, w.events.join(','), w.types?.join(',') ?? '*', w.selector ?? '*', w.enabled ? 'yes' : `no (${w.disabled_reason ?? ''})`, time(w.failing_since),
    w.description ?? '-',
  ]));
}

export function deliveriesTable(deliveries: DeliveryInfo[]): string[] {
  return table(['ID', 'EVENT', 'ABOUT', 'STATUS', 'ATTEMPT', 'HTTP', 'MS', 'NEXT TRY', 'LAST ERROR'], deliveries.map((d) => [
    String(d.id), d.event, d.task === null ? `endpoint ${d.endpoint ?? '-'}` : `${d.task.type}/${d.task.identifier}`, d.status, String(d.attempt), d.http_status === null ? '-' : String(d.http_status),
    d.duration_ms === null ? '-' : String(d.duration_ms), time(d.next_time), d.last_error ?? '-',
  ]));
}
