import { Batcher } from '../lib/batcher';
import { IdentifierConflictError, NoEndpointsError, NotFoundError } from '../lib/errors';
import type { Publisher } from './publisher';
import { guardDb } from './storage/database';
import type { EndpointRegistry } from './storage/endpoint-registry';
import type { Task } from './storage/entities/task';
import type { TaskResponse } from './storage/entities/task-response';
import type { ResponseStore } from './storage/response-store';
import type { NewTask, TaskStore } from './storage/task-store';
import { parseTaskRequest, requestHash } from './task-request';

export interface TaskServiceDeps {
  taskTypes: readonly string[];
  /** Seconds after which a silent endpoint is no longer expected by tasks that list none. */
  endpointExpiry: number;
  tasks: TaskStore;
  responses: ResponseStore;
  registry: EndpointRegistry;
  publisher: Publisher;
  /** Most tasks stored in one transaction. */
  maxBatch: number;
}

/** The use cases behind the HTTP API: create a task, read it with its responses. */
export class TaskService {
  private readonly types: Set<string>;
  private readonly creator: Batcher<NewTask, { task: Task; created: boolean }>;

  constructor(private readonly deps: TaskServiceDeps) {
    this.types = new Set(deps.taskTypes);
    // Concurrent POSTs share one transaction; each answer still waits for its commit.
    this.creator = new Batcher((items) => deps.tasks.createMany(items), { maxBatch: deps.maxBatch });
  }

  private requireType(type: string): void {
    if (!this.types.has(type)) throw new NotFoundError(`unknown task type '${type}'`);
  }

  /** Stores and sends a task; a repeat with the same body returns the stored task with `created: false`. */
  async create(type: string, body: unknown): Promise<{ task: Task; created: boolean }> {
    this.requireType(type);
    const req = parseTaskRequest(body);
    const hash = requestHash(req);
    const { task, created } = await guardDb(async () => {
      let expected = req.endpoints;
      if (!expected) {
        const existing = await this.deps.tasks.find(type, req.identifier);
        if (existing) return { task: existing, created: false };
        expected = await this.deps.registry.activeFor(type, new Date(Date.now() - this.deps.endpointExpiry * 1000));
        if (expected.length === 0) throw new NoEndpointsError(type);
      }
      return this.creator.submit({
        type, identifier: req.identifier, payload: req.payload, endpoints: req.endpoints, expected,
        requestHash: hash, now: new Date(),
      });
    });
    if (!created) {
      if (task.request_hash !== hash) throw new IdentifierConflictError(type, req.identifier);
      return { task, created: false };
    }
    return { task: await this.deps.publisher.send(task), created: true };
  }

  async get(type: string, identifier: string): Promise<{ task: Task; responses: TaskResponse[] }> {
    this.requireType(type);
    return guardDb(async () => {
      // Two queries at once on two pooled connections: the answer waits for the slower, not for both.
      const [task, responses] = await Promise.all([
        this.deps.tasks.find(type, identifier), this.deps.responses.listForTask(type, identifier)]);
      if (!task) throw new NotFoundError(`no ${type} task with identifier '${identifier}'`);
      return { task, responses };
    });
  }
}
