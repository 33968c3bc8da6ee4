import { InvalidRequestError, NotFoundError, SelectorSyntaxError } from '../../lib/errors';
import { parseSelector } from '../../protocol/label-selector';
import type { WebhookEvent } from '../lifecycle/states';
import type { WebhookBody, WebhookPatchBody } from '../schemas';
import { guardDb } from '../storage/database';
import type { DatabaseClock } from '../storage/database-clock';
import { type Delivery, NOTIFY_WEBHOOK, type Webhook, type WebhookStore } from '../storage/webhook-store';
import { randomBytes } from 'node:crypto';
import type { PostResult } from './post';
import { newSecret } from './signature';
import { checkWebhookUrl } from './url';

/** Sends one signed message to a subscription (the delivery job's `send`). */
export type Sender = (hook: Webhook, msgId: string, body: string) => Promise<PostResult>;

export interface WebhookServiceOptions {
  taskTypes: readonly string[];
  allowHttp: boolean;
  /**
   * How long a new or re-enabled subscription takes to be known by every API instance (each refreshes its
   * knowledge every api.webhooks.interval): the answer waits for it, so that every change committed after
   * the answer is delivered. 0 with one process (SQLite).
   */
  settleMs: number;
  /** How long a rotated-out secret still signs deliveries (api.webhooks.rotation_overlap). */
  rotationOverlapMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Webhook subscriptions: their checks (the URL's scheme, the task types) and their storage. */
export class WebhookService {
  constructor(private readonly store: WebhookStore, private readonly clock: DatabaseClock, private readonly o: WebhookServiceOptions,
    private readonly sender?: Sender) {}

  async create(body: WebhookBody, actor: string | null): Promise<Webhook> {
    const url = this.checkUrl(body.url);
    const types = this.checkTypes(body.types);
    const selector = checkSelector(body.selector);
    const now = await guardDb(() => this.clock.now());
    const made = await guardDb(() => this.store.create({
      url, events: [...new Set(body.events)] as WebhookEvent[], types, selector, description: body.description ?? null, secret: newSecret(), created_by: actor, created_time: now,
    }));
    await sleep(this.o.settleMs);
    return made;
  }

  list(): Promise<Webhook[]> {
    return guardDb(() => this.store.list());
  }

  async get(id: number): Promise<Webhook> {
    const w = await guardDb(() => this.store.find(id));
    if (!w) throw new NotFoundError(`no webhook ${id}`);
    return w;
  }

  /** Changes what is given; `enabled: true` re-enables a disabled subscription (its failure record cleared). */
  async update(id: number, patch: WebhookPatchBody): Promise<Webhook> {
    const url = patch.url === undefined ? undefined : this.checkUrl(patch.url);
    const types = patch.types === undefined ? undefined : this.checkTypes(patch.types);
    const selector = patch.selector === undefined ? undefined : checkSelector(patch.selector);
    const w = await this.get(id);
    if (url !== undefined) w.url = url;
    if (types !== undefined) w.types = types;
    // Other instances learn a new selector at their next refresh (until then its rows are not chosen there).
    const reselecting = selector !== undefined && selector !== null && selector !== w.selector;
    if (selector !== undefined) w.selector = selector;
    if (patch.events !== undefined) w.events = [...new Set(patch.events)] as WebhookEvent[];
    if (patch.description !== undefined) w.description = patch.description;
    const enabling = patch.enabled === true && !w.enabled;
    if (patch.enabled !== undefined && patch.enabled !== w.enabled) {
      w.enabled = patch.enabled;
      w.failing_since = null;
      w.disabled_reason = patch.enabled ? null : 'disabled by PATCH';
    }
    const now = await guardDb(() => this.clock.now());
    if (!(await guardDb(() => this.store.update(w, now)))) throw new NotFoundError(`no webhook ${id}`);
    if (enabling || reselecting) await sleep(this.o.settleMs);
    return this.get(id);
  }

  /** A new signing secret, answered this once; the replaced one signs too for api.webhooks.rotation_overlap. */
  async rotate(id: number): Promise<{ webhook: Webhook; secret: string }> {
    await this.get(id);
    const secret = newSecret();
    const now = await guardDb(() => this.clock.now());
    if (!(await guardDb(() => this.store.rotate(id, secret, now, new Date(now.getTime() + this.o.rotationOverlapMs))))) throw new NotFoundError(`no webhook ${id}`);
    return { webhook: await this.get(id), secret };
  }

  async delete(id: number): Promise<Webhook> {
    const w = await this.get(id);
    if (!(await guardDb(() => this.store.delete(id)))) throw new NotFoundError(`no webhook ${id}`);
    return w;
  }

  async deliveries(id: number, before: number, limit: number): Promise<Delivery[]> {
    if (id !== NOTIFY_WEBHOOK) await this.get(id);
    return guardDb(() => this.store.deliveries(id, before, limit));
  }

  /** Sends a delivery again, whatever its status (see WebhookStore.redeliver); answers it as it now is. */
  async redeliver(id: number, deliveryId: number): Promise<Delivery> {
    if (id !== NOTIFY_WEBHOOK) await this.get(id);
    const now = await guardDb(() => this.clock.now());
    const of = id === NOTIFY_WEBHOOK ? 'the tasks\' notifications' : `webhook ${id}`;
    if (!(await guardDb(() => this.store.redeliver(id, deliveryId, now)))) throw new NotFoundError(`no delivery ${deliveryId} of ${of}`);
    return (await guardDb(() => this.store.findDelivery(deliveryId))) as Delivery;
  }

  /**
   * POSTs a `webhook.test` message to the subscription's URL now, signed like any delivery and under the
   * same safety checks, and answers what came back. Nothing is stored or retried.
   */
  async test(id: number): Promise<{ message_id: string; ok: boolean; http_status: number | null; duration_ms: number; error: string | null }> {
    const w = await this.get(id);
    if (!this.sender) throw new Error('no sender');
    const now = await guardDb(() => this.clock.now());
    const msgId = `msg_test_${randomBytes(8).toString('hex')}`;
    const body = JSON.stringify({ type: 'webhook.test', timestamp: now.toISOString(), data: { webhook: w.id } });
    const r = await this.sender(w, msgId, body);
    return { message_id: msgId, ok: r.ok, http_status: r.status, duration_ms: Math.round(r.durationMs), error: r.error };
  }

  private checkUrl(raw: string): string {
    return checkWebhookUrl(raw, this.o.allowHttp, 'url');
  }

  private checkTypes(types: string[] | null | undefined): string[] | null {
    if (types === undefined || types === null || types.length === 0) return null;
    const unknown = types.filter((t) => !this.o.taskTypes.includes(t));
    if (unknown.length) throw new InvalidRequestError(`types: unknown task type '${unknown[0]}'; configured: ${this.o.taskTypes.join(', ')}`);
    return [...new Set(types)];
  }
}

/** A selector as written (null: none); one that does not parse is a 400 `bad_selector` naming the field and the position. */
function checkSelector(text: string | null | undefined): string | null {
  if (text === undefined || text === null) return null;
  try {
    parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorSyntaxError) throw new SelectorSyntaxError(err.position, `selector: ${err.message}`);
    throw err;
  }
  return text;
}
