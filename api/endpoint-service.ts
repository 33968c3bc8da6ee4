import { NotFoundError } from '../lib/errors';
import { guardDb } from './storage/database';
import type { EndpointRegistry, RegisteredEndpoint } from './storage/endpoint-registry';
import type { ShownState } from './lifecycle/states';
import type { EndpointResponse, ResponseStore } from './storage/response-store';
import type { TaskQueries } from './storage/task-queries';
import type { Page } from './task-service';

/** The registry of endpoints, and what each endpoint did across tasks. */
export class EndpointService {
  constructor(
    private readonly registry: EndpointRegistry,
    private readonly rows: ResponseStore,
    private readonly queries: TaskQueries,
    /** An endpoint is alive when its last heartbeat is at most this old. */
    private readonly aliveWithinMs: number,
  ) {}

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
