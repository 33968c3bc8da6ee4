import { NotFoundError } from '../lib/errors';
import { matches, Selector } from '../protocol/label-selector';
import { Facts, Labels, SELECTABLE_FACTS, selectable } from '../protocol/labels';
import type { Logger } from '../lib/logger';
import type { ServerTransport } from '../protocol/server-transport';
import type { TaskOperations } from './storage/operations';
import { guardDb } from './storage/database';
import type { EndpointRegistry, RegisteredEndpoint } from './storage/endpoint-registry';
import type { ShownState } from './lifecycle/states';
import type { EndpointResponse, ResponseStore } from './storage/response-store';
import type { TaskQueries } from './storage/task-queries';
import type { Page } from './task-service';

/** The most registered endpoints a selector is matched against in one listing. */
const MAX_MATCHED = 100_000;

/** What removing an endpoint touches beyond the registry: its open responses, its queues, its manager. */
export interface EndpointRemovalDeps {
  operations: TaskOperations;
  transport: ServerTransport;
  taskTypes: readonly string[];
  log: Logger;
}

export interface RemovedEndpoint {
  name: string;
  /** Its responses finished as `cancelled`. */
  cancelled: number;
}

/** The registry of endpoints, and what each endpoint did across tasks. */
export class EndpointService {
  constructor(
    private readonly registry: EndpointRegistry,
    private readonly rows: ResponseStore,
    private readonly queries: TaskQueries,
    /** An endpoint is alive when its last heartbeat is at most this old. */
    private readonly aliveWithinMs: number,
    /** An endpoint is stale once its last heartbeat is older than this (`api.endpoint_stale_after`). */
    private readonly staleAfterMs: number,
    private readonly removal: EndpointRemovalDeps,
  ) {}

  isStale(e: RegisteredEndpoint, now: number): boolean {
    return now - e.last_heartbeat.getTime() > this.staleAfterMs;
  }

  /**
   * The known, live endpoints of a task type: registered for it and heard from within
   * `api.endpoint_stale_after`, by name. What a task addressed by what its endpoints are resolves against.
   */
  liveFor(type: string): Promise<string[]> {
    return guardDb(() => this.registry.activeFor(type, this.staleAfterMs / 1000));
  }

  /**
   * The live endpoints of a task type whose labels and facts (labels winning over facts of the same name)
   * match the selector, by name, and how many are live: what a task addressed by a selector goes to.
   */
  async resolve(type: string, selector: Selector): Promise<{ matched: string[]; live: number }> {
    const live = await guardDb(() => this.registry.liveLabels(type, this.staleAfterMs / 1000));
    // A fleet shares a few label sets: each distinct text is parsed once. Facts (a host name each) are read
    // only when the selector names one.
    const parsed = new Map<string, Labels>();
    const labelsOf = (text: string | null): Labels => {
      if (text === null) return {};
      let labels = parsed.get(text);
      if (!labels) parsed.set(text, labels = JSON.parse(text) as Labels);
      return labels;
    };
    const namesFact = selector.some((r) => (SELECTABLE_FACTS as readonly string[]).includes(r.key));
    const matched = live.filter((e) => matches(selector, namesFact
      ? selectable(labelsOf(e.labels), e.facts === null ? null : JSON.parse(e.facts) as Facts)
      : labelsOf(e.labels))).map((e) => e.name);
    return { matched, live: live.length };
  }

  /**
   * The registered endpoints (live or not) that match the selector, a page of them after `after` by name,
   * and how many match in all.
   */
  async matching(selector: Selector, after: string, limit: number): Promise<{ items: RegisteredEndpoint[]; next: string | null; count: number }> {
    const all = (await guardDb(() => this.registry.all(MAX_MATCHED))).filter((e) => matches(selector, selectable(e.labels, e.facts)));
    const rest = all.filter((e) => e.name > after);
    const items = rest.slice(0, limit);
    return { items, next: rest.length > limit ? items[items.length - 1].name : null, count: all.length };
  }

  /**
   * Removes an endpoint: its open responses finished as `cancelled` (409 `endpoint_running` while a
   * handler of it runs a task, unless `force`; a forced one is told to abort), then its queues deleted with
   * what waits in them, then its registry rows and inventory entry. 404 for a name that is none of these.
   */
  async remove(name: string, force: boolean, actor: string | null): Promise<RemovedEndpoint> {
    const { operations, transport, taskTypes, log } = this.removal;
    const known = await guardDb(async () => (await this.registry.unknown([name])).length === 0 || this.rows.endpointKnown(name));
    if (!known) throw new NotFoundError(`no endpoint '${name}'`);
    const outcome = await guardDb(() => operations.removeEndpoint(name, force, actor));
    for (const [taskId, round] of outcome.rounds) {
      // Best effort, like a cancel's: a manager that is away asks for its cancelled tasks when it connects.
      await transport.publishControl({ kind: 'cancel', task_id: taskId, rounds: { [name]: round } }).catch((err: unknown) => {
        log.warn({ err, taskId, endpoint: name }, 'endpoint removed; its manager not told to skip the task');
      });
    }
    await transport.deleteEndpointQueues(name, taskTypes);
    await guardDb(() => this.registry.remove(name));
    log.info({ endpoint: name, cancelled: outcome.cancelled, force, actor }, 'endpoint removed');
    return { name, cancelled: outcome.cancelled };
  }

  /**
   * Removes the endpoints silent for longer than `forgetAfterMs` (by the database's clock), as an
   * operator's forced removal would: nothing of theirs can be running that will ever report.
   */
  async forgetSilent(forgetAfterMs: number, batch = 100): Promise<number> {
    const cutoff = new Date((await this.now()) - forgetAfterMs);
    const names = await guardDb(() => this.registry.silentSince(cutoff, batch));
    for (const name of names) await this.remove(name, true, 'endpoint_forget_after');
    return names.length;
  }

  /** `now`: the database's clock (see `now`), as the heartbeats are stamped with it. */
  isAlive(e: RegisteredEndpoint, now: number): boolean {
    return now - e.last_heartbeat.getTime() <= this.aliveWithinMs;
  }

  /** The database's time, in ms: this host's clock may be off. */
  async now(): Promise<number> {
    return (await guardDb(() => this.registry.now())).getTime();
  }

  async list(after: string, limit: number): Promise<{ items: RegisteredEndpoint[]; next: string | null }> {
    const rows = await guardDb(() => this.registry.list(after, limit + 1));
    const items = rows.slice(0, limit);
    return { items, next: rows.length > limit ? items[items.length - 1].name : null };
  }

  async responses(name: string, o: { state: ShownState | null; type: string | null; since: Date | null; until: Date | null; after: number | null; limit: number }): Promise<Page<EndpointResponse>> {
    return guardDb(async () => {
      if (!(await this.registry.get(name)) && !(await this.rows.endpointKnown(name))) throw new NotFoundError(`no endpoint '${name}'`);
      const { lo, hi } = await this.queries.idRange(o.since, o.until);
      const rows = await this.rows.forEndpoint(name, { state: o.state, type: o.type, lo, hi, beforeTaskId: o.after ?? Number.MAX_SAFE_INTEGER, limit: o.limit + 1 });
      const items = rows.slice(0, o.limit);
      return { items, next: rows.length > o.limit ? items[items.length - 1].task_id : null };
    });
  }
}
