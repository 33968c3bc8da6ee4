import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ApiClient } from './client';
import { CliError, EXIT, taskExitReason, taskExitStatus } from './exit-status';
import { followTask } from './follow';
import { followOutput, readOutput, type OutputLine } from './logs';
import { deliveriesTable, endpointsTable, schedulesTable, webhooksTable, taskHeader, taskListTable, taskTable, tokensTable, render, ansi, plain, type OutputFormat, type Paint } from './output';
import { endpointRowsFor, LineProgress, TerminalProgress, type Screen } from './progress';
import { TaskTracker } from './tracker';
import type { DeliveryInfo, EndpointInfo, ScheduleInfo, Task, TaskWithResponses, TokenInfo, WebhookInfo } from './types';
import { commaList } from '../lib/comma-list';

/** Where a command writes, and how. */
export interface Io {
  stdout: Screen & { isTTY?: boolean };
  stderr: Screen & { isTTY?: boolean };
  /** Colour at a terminal (not with NO_COLOR). */
  color: boolean;
  readStdin(): string;
}

export interface Context {
  client: ApiClient;
  format: OutputFormat;
  io: Io;
}

const paintFor = (ctx: Context, stream: { isTTY?: boolean }): Paint => (ctx.io.color && stream.isTTY ? ansi : plain);
const out = (ctx: Context, data: unknown, table: () => string[]): void => {
  ctx.io.stdout.write(render(ctx.format, data, table));
};
/** A task's status as the exit status, with its one-line reason on stderr. */
function exitFor(ctx: Context, task: Task): number {
  const reason = taskExitReason(task);
  if (reason) ctx.io.stderr.write(`tasker: ${reason}\n`);
  return taskExitStatus(task);
}

/** `--payload`: JSON, or `@file` (`@-`: standard input) holding JSON. */
export function readPayload(value: string, readStdin: () => string): unknown {
  let text = value;
  if (value.startsWith('@')) {
    const file = value.slice(1);
    try {
      text = file === '-' ? readStdin() : readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(`--payload: cannot read ${file === '-' ? 'standard input' : file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`--payload: not JSON (${(err as Error).message})`);
  }
}

/** `a,b, c` → ['a', 'b', 'c']. */
export const nameList = commaList;

/** Follows a task to its end, then shows it and answers its exit status. */
async function followAndReport(ctx: Context, snapshot: TaskWithResponses): Promise<number> {
  const { stdout, stderr } = ctx.io;
  const live = stderr.isTTY === true;
  const view = live ? new TerminalProgress(stderr, paintFor(ctx, stderr)) : new LineProgress(stderr);
  const final = await followTask(ctx.client, snapshot, view);
  const tracker = new TaskTracker(final.task, final.taskResponseList);
  if (ctx.format === 'table' && live && stdout.isTTY) {
    // Same terminal: the final table takes the place of the last frame rather than repeating it.
    (view as TerminalProgress).erase();
    out(ctx, final, () => taskTable(tracker, { maxRows: endpointRowsFor(stdout.rows ?? 24), columns: stdout.columns, paint: paintFor(ctx, stdout) }));
  } else {
    out(ctx, final, () => taskTable(tracker));
  }
  return exitFor(ctx, final.task);
}

export interface SendOptions {
  identifier?: string;
  payload?: string;
  endpoints?: string;
  /** A label selector (`role=web,region in (eu,us)`): the live endpoints it matches, instead of names. */
  selector?: string;
  /** Show the endpoints the task would go to; create nothing. */
  dryRun?: boolean;
  allowUnknownEndpoints?: boolean;
  batchSize?: string;
  maxErrors?: string;
  /** Seconds the task may run (the API's `timeout`). */
  timeout?: string;
  /** A URL the task's end is POSTed to (the API's `notify`). */
  notify?: string;
  wait?: boolean;
}

/** `10` → 10, `10%` stays a string: the API takes both. */
const amount = (v: string): number | string => (v.endsWith('%') ? v : Number(v));

export async function send(ctx: Context, type: string, o: SendOptions): Promise<number> {
  const body: Record<string, unknown> = { identifier: o.identifier ?? randomUUID() };
  if (o.payload !== undefined) body.payload = readPayload(o.payload, ctx.io.readStdin);
  if (o.endpoints !== undefined) body.endpoints = nameList(o.endpoints);
  if (o.selector !== undefined) body.selector = o.selector;
  if (o.allowUnknownEndpoints) body.allow_unknown_endpoints = true;
  if (o.maxErrors !== undefined && o.batchSize === undefined) throw new CliError('--max-errors needs --batch-size');
  if (o.batchSize !== undefined) {
    body.rollout = { batch_size: amount(o.batchSize), ...(o.maxErrors !== undefined ? { max_errors: amount(o.maxErrors) } : {}) };
  }
  if (o.timeout !== undefined) body.timeout = Number(o.timeout);
  if (o.notify !== undefined) body.notify = o.notify;
  if (o.dryRun) {
    const plan = await ctx.client.json<{ endpoints: string[]; count: number; selector: string | null }>('POST', [type], { body, query: { dry_run: 'true' } });
    out(ctx, plan, () => [`would send to ${plan.count} endpoint${plan.count === 1 ? '' : 's'}${plan.selector ? ` (selector ${plan.selector})` : ''}:`, ...plan.endpoints.map((e) => `  ${e}`)]);
    return EXIT.OK;
  }
  const task = await ctx.client.json<Task>('POST', [type], { body });
  if (!o.wait) {
    out(ctx, task, () => [...taskHeader(task, paintFor(ctx, ctx.io.stdout)), `follow it: tasker watch ${type} ${task.identifier}`]);
    return EXIT.OK;
  }
  return followAndReport(ctx, { task, taskResponseList: [] });
}

export async function get(ctx: Context, type: string, identifier: string): Promise<number> {
  const found = await ctx.client.json<TaskWithResponses>('GET', [type, identifier]);
  out(ctx, found, () => taskTable(new TaskTracker(found.task, found.taskResponseList), { paint: paintFor(ctx, ctx.io.stdout) }));
  return exitFor(ctx, found.task);
}

export async function watch(ctx: Context, type: string, identifier: string): Promise<number> {
  return followAndReport(ctx, await ctx.client.json<TaskWithResponses>('GET', [type, identifier]));
}

/**
 * A task's output lines (docs/handlers.md "Output"): of one endpoint, or of each (every line then starts with its
 * endpoint's name); stderr lines go to stderr. With `follow`, as they are written, until every response
 * followed finished. Text whatever `--output` says (output is lines, piped or not); `json`: one JSON object a line.
 */
export async function logs(ctx: Context, type: string, identifier: string, o: { endpoint?: string; follow?: boolean; json?: boolean }): Promise<number> {
  let names: string[];
  if (o.endpoint !== undefined) {
    names = [o.endpoint];
  } else {
    const { taskResponseList } = await ctx.client.json<TaskWithResponses>('GET', [type, identifier]);
    names = taskResponseList.map((r) => r.endpoint);
  }
  const prefixed = names.length > 1;
  const write = (endpoint: string) => (line: OutputLine): void => {
    if (o.json) {
      ctx.io.stdout.write(`${JSON.stringify({ endpoint, ...line })}\n`);
      return;
    }
    const text = `${prefixed ? `${endpoint} | ` : ''}${line.text}\n`;
    (line.stream === 'stderr' ? ctx.io.stderr : ctx.io.stdout).write(text);
  };
  const read = o.follow ? followOutput : readOutput;
  if (o.follow) await Promise.all(names.map((ep) => read(ctx.client, [type, identifier, 'responses', ep, 'output'], write(ep))));
  // One after the other: the endpoints' lines are not interleaved.
  else for (const ep of names) await read(ctx.client, [type, identifier, 'responses', ep, 'output'], write(ep));
  return EXIT.OK;
}

export interface ListFilters {
  status?: string; endpoint?: string; state?: string; since?: string; until?: string; prefix?: string; limit?: string; cursor?: string;
}

export async function list(ctx: Context, type: string, f: ListFilters): Promise<number> {
  const query = { status: f.status, endpoint: f.endpoint, state: f.state, since: f.since, until: f.until, identifier_prefix: f.prefix, limit: f.limit, cursor: f.cursor };
  const page = await ctx.client.json<{ tasks: Task[]; next_cursor: string | null }>('GET', [type], { query });
  out(ctx, page, () => taskListTable(page.tasks, page.next_cursor));
  return EXIT.OK;
}

export async function retry(ctx: Context, type: string, identifier: string, o: { endpoints: string; wait?: boolean; idempotencyKey?: string }): Promise<number> {
  const selector = ['failed', 'missing', 'unfinished'].includes(o.endpoints) ? o.endpoints : nameList(o.endpoints);
  const headers: Record<string, string> = o.idempotencyKey ? { 'idempotency-key': o.idempotencyKey } : {};
  const answer = await ctx.client.json<{ task: Task; retried: string[] }>('POST', [type, identifier, 'retry'], { body: { endpoints: selector }, headers });
  if (!o.wait) {
    out(ctx, answer, () => [`retried on ${answer.retried.length}: ${answer.retried.join(', ')}`, ...taskHeader(answer.task, paintFor(ctx, ctx.io.stdout))]);
    return EXIT.OK;
  }
  return followAndReport(ctx, await ctx.client.json<TaskWithResponses>('GET', [type, identifier]));
}

export async function cancel(ctx: Context, type: string, identifier: string): Promise<number> {
  const task = await ctx.client.json<Task>('POST', [type, identifier, 'cancel']);
  out(ctx, task, () => taskHeader(task, paintFor(ctx, ctx.io.stdout)));
  return EXIT.OK;
}

export async function endpoints(ctx: Context, o: { limit?: string; cursor?: string; selector?: string }): Promise<number> {
  const page = await ctx.client.json<{ endpoints: EndpointInfo[]; next_cursor: string | null; count?: number }>('GET', ['endpoints'], {
    query: { limit: o.limit, cursor: o.cursor, selector: o.selector },
  });
  out(ctx, page, () => [...endpointsTable(page.endpoints, page.next_cursor), ...(page.count !== undefined ? [`${page.count} matching`] : [])]);
  return EXIT.OK;
}

export async function endpointRemove(ctx: Context, name: string, force: boolean): Promise<number> {
  const removed = await ctx.client.json<{ name: string; cancelled: number }>('DELETE', ['endpoints', name], { query: force ? { force: 'true' } : {} });
  out(ctx, removed, () => [`endpoint '${removed.name}' removed: ${removed.cancelled} open ${removed.cancelled === 1 ? 'response' : 'responses'} cancelled, its queues deleted`]);
  return EXIT.OK;
}

export async function tokenCreate(ctx: Context, name: string, scopes: string[]): Promise<number> {
  const created = await ctx.client.json<{ name: string; scopes: string[]; token: string }>('POST', ['tokens'], { body: { name, scopes } });
  out(ctx, created, () => [
    `token '${created.name}' (${created.scopes.join(', ')}), shown this once; give it with --token or TASKER_TOKEN:`, created.token,
  ]);
  return EXIT.OK;
}

export async function tokenList(ctx: Context): Promise<number> {
  const page = await ctx.client.json<{ tokens: TokenInfo[] }>('GET', ['tokens']);
  out(ctx, page, () => tokensTable(page.tokens));
  return EXIT.OK;
}

export async function tokenRevoke(ctx: Context, name: string): Promise<number> {
  const revoked = await ctx.client.json<TokenInfo>('DELETE', ['tokens', name]);
  out(ctx, revoked, () => tokensTable([revoked]));
  return EXIT.OK;
}

export interface ScheduleOptions {
  type?: string;
  cron?: string;
  every?: string;
  timezone?: string;
  payload?: string;
  endpoints?: string;
  selector?: string;
}

/** The fields of a schedule that options give (the API checks them and names the field it refuses). */
function scheduleFields(ctx: Context, o: ScheduleOptions): Record<string, unknown> {
  return {
    ...(o.type !== undefined ? { task_type: o.type } : {}),
    ...(o.cron !== undefined ? { cron: o.cron } : {}),
    ...(o.every !== undefined ? { every: o.every } : {}),
    ...(o.timezone !== undefined ? { timezone: o.timezone } : {}),
    ...(o.payload !== undefined ? { payload: readPayload(o.payload, ctx.io.readStdin) } : {}),
    ...(o.endpoints !== undefined ? { endpoints: nameList(o.endpoints) } : {}),
    ...(o.selector !== undefined ? { selector: o.selector } : {}),
  };
}

const showSchedule = (ctx: Context, s: ScheduleInfo): number => {
  out(ctx, s, () => schedulesTable([s]));
  return EXIT.OK;
};

export async function scheduleCreate(ctx: Context, name: string, o: ScheduleOptions & { paused?: boolean }): Promise<number> {
  if (o.cron === undefined && o.every === undefined) throw new CliError('give --cron or --every');
  const body = { name, ...scheduleFields(ctx, o), ...(o.paused ? { paused: true } : {}) };
  return showSchedule(ctx, await ctx.client.json<ScheduleInfo>('POST', ['schedules'], { body }));
}

export async function scheduleUpdate(ctx: Context, name: string, o: ScheduleOptions): Promise<number> {
  const body = scheduleFields(ctx, o);
  if (Object.keys(body).length === 0) throw new CliError('nothing to change: give --type, --cron, --every, --timezone, --payload, --endpoints or --selector');
  return showSchedule(ctx, await ctx.client.json<ScheduleInfo>('PATCH', ['schedules', name], { body }));
}

export async function scheduleList(ctx: Context): Promise<number> {
  const list = await ctx.client.json<{ schedules: ScheduleInfo[] }>('GET', ['schedules']);
  out(ctx, list, () => (list.schedules.length ? schedulesTable(list.schedules) : ['no schedules']));
  return EXIT.OK;
}

export async function scheduleGet(ctx: Context, name: string): Promise<number> {
  return showSchedule(ctx, await ctx.client.json<ScheduleInfo>('GET', ['schedules', name]));
}

/** pause, resume or delete. */
export async function scheduleAction(ctx: Context, name: string, action: 'pause' | 'resume' | 'delete'): Promise<number> {
  const s = action === 'delete'
    ? await ctx.client.json<ScheduleInfo>('DELETE', ['schedules', name])
    : await ctx.client.json<ScheduleInfo>('POST', ['schedules', name, action]);
  return showSchedule(ctx, s);
}

export interface WebhookOptions {
  events?: string;
  types?: string;
  selector?: string;
  description?: string;
}

export async function webhookAdd(ctx: Context, url: string, o: WebhookOptions): Promise<number> {
  const body = {
    url, events: nameList(o.events ?? ''), ...(o.types !== undefined ? { types: nameList(o.types) } : {}),
    ...(o.selector !== undefined ? { selector: o.selector } : {}),
    ...(o.description !== undefined ? { description: o.description } : {}),
  };
  const made = await ctx.client.json<WebhookInfo>('POST', ['webhooks'], { body });
  out(ctx, made, () => [...webhooksTable([made]), '', 'signing secret, shown this once (verify each delivery\'s webhook-signature with it):', made.secret ?? '']);
  return EXIT.OK;
}

export async function webhookList(ctx: Context): Promise<number> {
  const list = await ctx.client.json<{ webhooks: WebhookInfo[] }>('GET', ['webhooks']);
  out(ctx, list, () => (list.webhooks.length ? webhooksTable(list.webhooks) : ['no webhooks']));
  return EXIT.OK;
}

export async function webhookRemove(ctx: Context, id: string): Promise<number> {
  const removed = await ctx.client.json<WebhookInfo>('DELETE', ['webhooks', id]);
  out(ctx, removed, () => webhooksTable([removed]));
  return EXIT.OK;
}

export async function webhookEnable(ctx: Context, id: string, enabled: boolean): Promise<number> {
  const changed = await ctx.client.json<WebhookInfo>('PATCH', ['webhooks', id], { body: { enabled } });
  out(ctx, changed, () => webhooksTable([changed]));
  return EXIT.OK;
}

export async function webhookRotate(ctx: Context, id: string): Promise<number> {
  const made = await ctx.client.json<WebhookInfo>('POST', ['webhooks', id, 'rotate']);
  out(ctx, made, () => [...webhooksTable([made]), '', `new signing secret, shown this once (the old one signs too until ${made.previous_secret_until ?? '-'}):`,
    made.secret ?? '']);
  return EXIT.OK;
}

/** Exit status 0 when the receiver answered 2xx, else 1 with its answer or error. */
export async function webhookTest(ctx: Context, id: string): Promise<number> {
  const r = await ctx.client.json<{ message_id: string; ok: boolean; http_status: number | null; duration_ms: number; error: string | null }>(
    'POST', ['webhooks', id, 'test']);
  out(ctx, r, () => [r.ok ? `delivered ${r.message_id}: ${r.http_status} in ${r.duration_ms} ms` : `not delivered ${r.message_id}: ${r.error ?? ''}`]);
  return r.ok ? EXIT.OK : EXIT.ERROR;
}

export async function webhookDeliveries(ctx: Context, id: string, o: { limit?: string; before?: string }): Promise<number> {
  const page = await ctx.client.json<{ deliveries: DeliveryInfo[]; next_before: number | null }>('GET', ['webhooks', id, 'deliveries'],
    { query: { limit: o.limit, before: o.before } });
  out(ctx, page, () => [...(page.deliveries.length ? deliveriesTable(page.deliveries) : ['no deliveries']),
    ...(page.next_before === null ? [] : [`older: --before ${page.next_before}`])]);
  return EXIT.OK;
}

export async function webhookRedeliver(ctx: Context, id: string, delivery: string): Promise<number> {
  const d = await ctx.client.json<DeliveryInfo>('POST', ['webhooks', id, 'deliveries', delivery, 'redeliver']);
  out(ctx, d, () => deliveriesTable([d]));
  return EXIT.OK;
}
