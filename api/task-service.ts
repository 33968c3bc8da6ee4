import { Batcher } from '../lib/batcher';
import { BacklogFullError, IdentifierConflictError, InvalidRequestError, NoEndpointsError, NoMatchingEndpointsError, EndpointsNotServingError, NotFoundError, TaskTooLargeError, UnknownEndpointsError } from '../lib/errors';
import type { Selector } from '../protocol/label-selector';
import type { Reservation } from '../protocol/broker';
import type { Publisher } from './publisher';
import { guardDb } from './storage/database';
import type { EndpointRegistry } from './storage/endpoint-registry';
import type { Task, TaskResponse } from './storage/rows';
import { ENDED_STATUSES, ENDPOINT_STATE, EndpointState as ResponseState, ShownState } from './lifecycle/states';
import type { History, StoredEvent } from './storage/history';
import { taskRowBytes } from './storage/insert-bound';
import type { ResponseStore } from './storage/response-store';
import type { TaskFilter, TaskQueries } from './storage/task-queries';
import { writeJson } from './storage/sql-values';
import { firstTargets, NewTask, TaskStore } from './storage/task-store';
import type { PayloadSchemas } from './payload-schemas';
import { resolveRollout } from './rollout';
import { requestHash, TaskRequest } from './task-request';
import { checkWebhookUrl } from './webhooks/url';
import { countRows } from './views';
import type { WatchHub } from './watch-hub';

export interface TaskServiceDeps {
  taskTypes: readonly string[];
  /** Command types' payload schemas, checked before anything is stored. */
  payloads?: PayloadSchemas;
  /** Seconds after which a silent endpoint is no longer expected by tasks that list none. */
  endpointExpiry: number;
  /** `refuse`: a task listing endpoints outside the inventory is a 422 unless it allows them (`api.unknown_endpoints`). */
  unknownEndpoints: 'refuse' | 'allow';
  /** Endpoints run by this very process, known before their registration is stored. */
  localEndpoints: readonly string[];
  /** Seconds a task may run when its request gives no `timeout` (`api.execution_timeout`). */
  executionTimeout: number;
  /** A task expecting at least this many endpoints is answered before its publish is confirmed (`api.background_send_from`; 0: never). */
  backgroundSendFrom?: number;
  tasks: TaskStore;
  queries: TaskQueries;
  responses: ResponseStore;
  history: History;
  registry: EndpointRegistry;
  publisher: Publisher;
  hub: WatchHub;
  /** Most tasks stored in one transaction. */
  maxBatch: number;
  /** Most bytes of task rows in one INSERT (see insert-bound): a batch stays within it, and a larger task is refused. */
  maxBatchBytes: number;
  /**
   * The live endpoints of the type (a heartbeat within `api.endpoint_stale_after`) whose labels and facts
   * match, by name, and how many live ones there are.
   */
  resolveSelector: (type: string, selector: Selector) => Promise<{ matched: string[]; live: number }>;
  /** What a task's own `notify` URL needs (api.webhooks): allowed at all, a secret to sign with, whether http:// will do. */
  notify?: { allowed: boolean; signing: boolean; allowHttp: boolean };
  /** Room for a new task in the queues it will reach, held until it is sent; `null` when they are full. */
  admit: (type: string, endpoints: readonly string[] | null) => Reservation | null;
}

/** Seconds a client refused for a full backlog waits: the in-process queues drain thousands a second. */
const BACKLOG_RETRY_AFTER_S = 1;

export interface TaskWithCounts {
  task: Task;
  counts: ReadonlyMap<ResponseState, number>;
}

export interface Page<T> {
  items: T[];
  /** The position after the last item, when more may follow. */
  next: number | null;
}

/** The use cases behind the task routes: create, read, find, page the responses, read the history. */
export class TaskService {
  private readonly types: Set<string>;
  private readonly local: Set<string>;
  private readonly creator: Batcher<{ task: NewTask; bytes: number }, { task: Task; created: boolean }>;

  constructor(private readonly deps: TaskServiceDeps) {
    this.types = new Set(deps.taskTypes);
    this.local = new Set(deps.localEndpoints);
    // Concurrent POSTs share one transaction, as many as fit one statement; each answer still waits for its commit.
    this.creator = new Batcher((items) => deps.tasks.createMany(items.map((i) => i.task)), {
      maxBatch: deps.maxBatch, weigh: (i) => i.bytes, maxWeight: deps.maxBatchBytes,
    });
  }

  requireType(type: string): void {
    if (!this.types.has(type)) throw new NotFoundError(`unknown task type '${type}'`);
  }

  /** Stores and sends a task; a repeat with the same body returns the stored task with `created: false`. */
  async create(type: string, request: TaskRequest, actor: string | null): Promise<TaskWithCounts & { created: boolean }> {
    this.requireType(type);
    this.deps.payloads?.check(type, request.payload);
    let req = request.notify ? { ...request, notify: this.checkNotify(request.notify) } : request;
    if (req.selector) {
      // A repeat is answered with what the first request resolved to, whatever the fleet is now.
      const existing = await guardDb(() => this.deps.tasks.find(type, req.identifier));
      if (existing) return this.repeat(existing, req);
      req = { ...req, endpoints: await this.resolve(type, req.selector) };
    } else {
      await this.checkInventory(type, req);
    }
    const room = this.deps.admit(type, req.endpoints);
    // A repeat of a stored task is answered as such: a 503 must only ever mean "not stored".
    if (!room && !(await guardDb(() => this.deps.tasks.find(type, req.identifier)))) throw new BacklogFullError(BACKLOG_RETRY_AFTER_S);
    try {
      return await this.store(type, req, actor);
    } finally {
      room?.release();
    }
  }

  /**
   * The endpoints a task would go to, resolved as its creation would resolve them (a selector's live
   * matches, the listed names checked against the inventory, or the registered ones), creating nothing.
   */
  async plan(type: string, req: TaskRequest): Promise<string[]> {
    this.requireType(type);
    this.deps.payloads?.check(type, req.payload);
    if (req.selector) return this.resolve(type, req.selector);
    if (req.endpoints) {
      await this.checkInventory(type, req);
      return req.endpoints;
    }
    const registered = await guardDb(() => this.deps.registry.activeFor(type, this.deps.endpointExpiry));
    if (registered.length === 0) throw new NoEndpointsError(type);
    return registered;
  }

  private async resolve(type: string, selector: NonNullable<TaskRequest['selector']>): Promise<string[]> {
    const { matched, live } = await guardDb(() => this.deps.resolveSelector(type, selector.parsed));
    if (matched.length === 0) throw new NoMatchingEndpointsError(type, selector.text, live);
    return matched;
  }

  private async repeat(task: Task, req: TaskRequest): Promise<TaskWithCounts & { created: boolean }> {
    if (task.request_hash !== requestHash(req)) throw new IdentifierConflictError(task.type, req.identifier);
    return { task, created: false, counts: await this.counts(task) };
  }

  /**
   * Refuses a task that lists names outside the inventory, before anything is reserved, stored or declared:
   * a typo's queue would keep every later broadcast of the type with nobody to read it. A repeat of a task
   * stored before (when it allowed them) is answered as the repeat it is.
   */
  private async checkInventory(type: string, req: TaskRequest): Promise<void> {
    if (!req.endpoints || req.allowUnknownEndpoints || this.deps.unknownEndpoints === 'allow') return;
    const endpoints = req.endpoints.filter((e) => !this.local.has(e));
    const unknown = endpoints.length === 0 ? [] : await guardDb(() => this.deps.registry.unknown(endpoints));
    // An endpoint that registered for other types only would never consume this one: its queue would be
    // declared and bound, and the task go INCOMPLETE once nobody answered.
    const notServing = unknown.length > 0 ? [] : await guardDb(() => this.deps.registry.notServing(type, req.endpoints ?? []));
    if (unknown.length === 0 && notServing.length === 0) return;
    if (await guardDb(() => this.deps.tasks.find(type, req.identifier))) return;
    if (unknown.length > 0) throw new UnknownEndpointsError(unknown);
    throw new EndpointsNotServingError(type, notServing);
  }

  /** A task's `notify` URL, refused (400 naming `notify`) unless the deployment allows and can sign it. */
  private checkNotify(url: string): string {
    const o = this.deps.notify;
    if (!o?.allowed) throw new InvalidRequestError('notify: a task\'s own notify URL is not allowed here (api.webhooks.allow_per_task_urls is false)');
    if (!o.signing) throw new InvalidRequestError('notify: api.webhooks.notify_secret is not set, so a notification could not be signed');
    return checkWebhookUrl(url, o.allowHttp, 'notify');
  }

  private async store(type: string, req: TaskRequest, actor: string | null): Promise<TaskWithCounts & { created: boolean }> {
    const hash = requestHash(req);
    const { task, created } = await guardDb(async () => {
      let expected = req.endpoints;
      if (!expected) {
        const existing = await this.deps.tasks.find(type, req.identifier);
        if (existing) return { task: existing, created: false };
        expected = await this.deps.registry.activeFor(type, this.deps.endpointExpiry);
        if (expected.length === 0) throw new NoEndpointsError(type);
      }
      const item: NewTask = {
        type, identifier: req.identifier, payload: req.payload, endpoints: req.endpoints, selector: req.selector?.text ?? null, expected, notify: req.notify ?? null,
        requestHash: hash, timeout: req.timeout ?? this.deps.executionTimeout, actor, rollout: req.rollout ? resolveRollout(req.rollout, expected.length) : null,
        deferRows: this.sendsInBackground(expected.length),
      };
      const bytes = taskRowBytes(item, writeJson(item.payload));
      // Alone in its statement it would still be refused by the database (and fail any batch it joined).
      if (bytes > this.deps.maxBatchBytes) throw new TaskTooLargeError(bytes, this.deps.maxBatchBytes);
      return this.creator.submit({ task: item, bytes });
    });
    if (!created) {
      if (task.request_hash !== hash) throw new IdentifierConflictError(type, req.identifier);
      return { task, created: false, counts: await this.counts(task) };
    }
    // A new task's endpoints are all pending, but for a rollout's that wait for their turn.
    const first = firstTargets(task).length;
    const counts = new Map<ResponseState, number>([[ENDPOINT_STATE.PENDING, first], ...(first < task.expected_count ? [[ENDPOINT_STATE.QUEUED, task.expected_count - first] as const] : [])]);
    // A broadcast to a large fleet: its response rows and the broker's confirm of every copy (each queue's
    // write) take far longer than its task row; once stored it is sent, now or by the resend job, so the
    // answer need not wait for either.
    if (this.sendsInBackground(task.expected_count)) {
      this.deps.publisher.sendInBackground(task);
      return { task, created: true, counts };
    }
    return { task: await this.deps.publisher.send(task), created: true, counts };
  }

  /**
   * A task for a large fleet: stored with one row (its response rows follow, ResponseRows) and answered
   * once committed; its send follows in the background.
   */
  private sendsInBackground(expected: number): boolean {
    const from = this.deps.backgroundSendFrom ?? 0;
    return from > 0 && expected >= from;
  }

  async counts(task: Task): Promise<ReadonlyMap<ResponseState, number>> {
    return (await guardDb(() => this.deps.responses.stateCounts([task.id]))).get(task.id) ?? new Map();
  }

  async find(type: string, identifier: string): Promise<Task> {
    this.requireType(type);
    const task = await guardDb(() => this.deps.tasks.find(type, identifier));
    if (!task) throw new NotFoundError(`no ${type} task with identifier '${identifier}'`);
    return task;
  }

  /** The task with every expected endpoint's response. */
  async get(type: string, identifier: string): Promise<{ task: Task; responses: TaskResponse[] }> {
    const task = await this.find(type, identifier);
    return { task, responses: await guardDb(() => this.deps.responses.listForTask(task.id)) };
  }

  /**
   * `get`, once the task has ended (DONE, INCOMPLETE or CANCELLED) or after `seconds`, whichever comes
   * first: woken by the notice of its end, without reading the database meanwhile.
   */
  async getWhenEnded(type: string, identifier: string, seconds: number): Promise<{ task: Task; responses: TaskResponse[] }> {
    const first = await this.find(type, identifier);
    if (ENDED_STATUSES.includes(first.status)) return this.get(type, identifier);
    const waiter = this.deps.hub.waiter(first.id, seconds * 1000);
    try {
      // Read again once registered: an end between the first read and the registration is not missed.
      const again = await guardDb(() => this.deps.tasks.findById(first.id));
      if (again && !ENDED_STATUSES.includes(again.status)) await waiter.ended;
    } finally {
      waiter.cancel();
    }
    return this.get(type, identifier);
  }

  async list(type: string, filter: Omit<TaskFilter, 'beforeId' | 'limit'>, after: number | null, limit: number): Promise<Page<TaskWithCounts>> {
    this.requireType(type);
    return guardDb(async () => {
      const page = await this.deps.queries.list(type, { ...filter, beforeId: after ?? Number.MAX_SAFE_INTEGER, limit });
      const counts = await this.deps.responses.stateCounts(page.tasks.map((t) => t.id));
      return { items: page.tasks.map((task) => ({ task, counts: counts.get(task.id) ?? new Map() })), next: page.next };
    });
  }

  /** A page of a task's responses (for tasks with many endpoints), in one state if given. */
  async responses(type: string, identifier: string, state: ShownState | null, after: number | null, limit: number): Promise<{ task: Task; page: Page<TaskResponse> }> {
    const task = await this.find(type, identifier);
    const rows = await guardDb(() => this.deps.responses.pageForTask(task.id, task.status, state, after ?? 0, limit + 1));
    const items = rows.slice(0, limit);
    return { task, page: { items, next: rows.length > limit ? items[items.length - 1].id : null } };
  }

  /** The task's history after event `after`, oldest first. */
  async events(type: string, identifier: string, after: number, limit: number): Promise<{ task: Task; page: Page<StoredEvent> }> {
    const task = await this.find(type, identifier);
    const events = await guardDb(() => this.deps.history.forTask(task.id, after, limit + 1));
    const items = events.slice(0, limit);
    return { task, page: { items, next: events.length > limit ? items[items.length - 1].id : null } };
  }

  /** Every task's events after `after` (of one type, if given), oldest first. */
  async allEvents(type: string | null, after: number, limit: number): Promise<Page<StoredEvent>> {
    if (type !== null) this.requireType(type);
    const { events } = await guardDb(() => this.deps.history.after(after, type, limit + 1));
    const items = events.slice(0, limit);
    return { items, next: events.length > limit ? items[items.length - 1].id : null };
  }

  /** Where a stream of every task's events from now on starts (see History.lastId). */
  lastEventId(): Promise<number> {
    return guardDb(() => this.deps.history.lastId());
  }

  /** Counts for a task just read (rows in hand). */
  static countsOf(rows: readonly TaskResponse[]): ReadonlyMap<ResponseState, number> {
    return countRows(rows);
  }
}
