import type { Logger } from '../../lib/logger';
import { backoffDelay } from '../../lib/retry';
import { DELIVERY_STATUS, WEBHOOK_EVENT_STATUS } from '../lifecycle/states';
import type { DatabaseClock } from '../storage/database-clock';
import { readOptionalTime, readTime } from '../storage/sql-values';
import { type Delivery, NOTIFY_WEBHOOK, type Webhook, type WebhookStore } from '../storage/webhook-store';
import { postOnce, type PostResult } from './post';
import { sign } from './signature';

/** The largest body a delivery carries; a larger one is replaced by the task's link only. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
/** How long past its timeout a claimed delivery stays leased to the instance that claimed it (it may be slow to record). */
const LEASE_MARGIN_MS = 30_000;
/** Ended deliveries removed from the log in one statement. */
const PRUNE_BATCH = 1000;

export interface DispatcherOptions {
  timeoutMs: number;
  retryForMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  concurrency: number;
  /** How long an ended delivery stays in the log. */
  keepMs: number;
  allowPrivate: boolean;
  /** The start of the payloads' links ('' : links are paths). */
  publicUrl: string;
  /** Signs the tasks' own `notify` deliveries (api.webhooks.notify_secret; '' : none). */
  notifySecret?: string;
  /** Told of each attempt's outcome (the metrics). */
  onAttempt?: (outcome: 'delivered' | 'retrying' | 'failed') => void;
}

const iso = (v: unknown): string | null => readOptionalTime(v)?.toISOString() ?? null;

/**
 * The delivery job: every run takes the deliveries that are due (on any number of API instances at once:
 * see WebhookStore.claim), POSTs each with its Standard Webhooks headers, and records the outcome. A
 * failure is tried again after an exponential backoff with jitter, for api.webhooks.retry_for from the
 * event; the `webhook-id` is the same at every try (and after a crash), so a receiver can drop repeats.
 */
export class WebhookDispatcher {
  constructor(
    private readonly store: WebhookStore,
    private readonly clock: DatabaseClock,
    private readonly o: DispatcherOptions,
    private readonly log: Logger,
    private readonly post: typeof postOnce = postOnce,
  ) {}

  /** One run: answers how many deliveries it tried. */
  async run(): Promise<number> {
    if (!this.store.active && !this.store.notifying) return 0;
    let total = 0;
    for (;;) {
      const now = await this.clock.now();
      const claimed = await this.store.claim(now, new Date(now.getTime() + this.o.timeoutMs + LEASE_MARGIN_MS), this.o.concurrency);
      if (claimed.length === 0) return total;
      const hooks = new Map<number, Webhook | null>();
      for (const d of claimed) if (d.webhook_id !== NOTIFY_WEBHOOK && !hooks.has(d.webhook_id)) hooks.set(d.webhook_id, await this.store.find(d.webhook_id));
      const hookOf = async (d: Delivery): Promise<Webhook | null> => (d.webhook_id === NOTIFY_WEBHOOK ? this.notifyHook(d) : hooks.get(d.webhook_id) ?? null);
      await Promise.all(claimed.map((d) => hookOf(d).then((hook) => this.deliver(d, hook)).catch((err: unknown) => {
        // The lease runs out and the delivery is tried again (by any instance).
        this.log.warn({ err, delivery: d.id }, 'a webhook delivery could not be recorded');
      })));
      total += claimed.length;
      if (claimed.length < this.o.concurrency) return total;
    }
  }

  /** Removes the ended deliveries whose time in the log is over, batch after batch; answers how many. */
  async prune(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.store.prune(await this.clock.now(), PRUNE_BATCH);
      total += n;
      if (n < PRUNE_BATCH) return total;
    }
  }

  /** POSTs a message to a subscription's URL once, signed: for deliveries, and for `POST /webhooks/<id>/test`. */
  async send(hook: Webhook, msgId: string, body: string): Promise<PostResult> {
    const now = await this.clock.now();
    const timestamp = Math.floor(now.getTime() / 1000);
    // During a rotation's overlap both secrets sign (space-separated, as Standard Webhooks allows): a
    // receiver verifies with whichever it holds.
    let signature = sign(hook.secret, msgId, timestamp, body);
    if (hook.previous_secret !== null && hook.previous_secret_until !== null && now < hook.previous_secret_until) {
      signature += ` ${sign(hook.previous_secret, msgId, timestamp, body)}`;
    }
    try {
      return await this.post(new URL(hook.url), {
        'webhook-id': msgId, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature,
      }, body, { timeoutMs: this.o.timeoutMs, allowPrivate: this.o.allowPrivate });
    } catch (err) {
      return { ok: false, status: null, durationMs: 0, error: `the request could not be made: ${(err as Error).message}` };
    }
  }

  /**
   * A task's own notification as a subscription of one: the task's URL, the deployment's notify secret.
   * Null when the task is gone (retention) or nothing can sign it any more: the row is then failed.
   */
  private async notifyHook(d: Delivery): Promise<Webhook | null> {
    const url = await this.store.notifyUrl(d.task_id);
    if (url === null || !this.o.notifySecret) return null;
    return {
      id: NOTIFY_WEBHOOK, url, events: [d.event], types: null, selector: null, description: null, secret: this.o.notifySecret, previous_secret: null,
      previous_secret_until: null, enabled: true, disabled_reason: null, failing_since: null, created_by: null, created_time: d.event_time, updated_time: d.event_time,
    };
  }

  private async deliver(d: Delivery, hook: Webhook | null): Promise<void> {
    if (hook === null && d.webhook_id === NOTIFY_WEBHOOK) {
      const now = await this.clock.now();
      this.o.onAttempt?.(DELIVERY_STATUS.FAILED);
      await this.store.record({ delivery: d, ok: false, httpStatus: null, durationMs: 0, error: 'the task or api.webhooks.notify_secret is gone', nextTime: null },
        now, this.o.retryForMs, this.o.keepMs);
      return;
    }
    if (hook === null) return; // deleted meanwhile, with its deliveries
    const body = d.body ?? await this.payload(d);
    if (d.body === null) await this.store.keepBody(d.id, body);
    const result = await this.send(hook, `msg_${d.id}`, body);
    const now = await this.clock.now();
    let nextTime: Date | null = null;
    if (!result.ok && now.getTime() - d.retry_from.getTime() < this.o.retryForMs) {
      nextTime = new Date(now.getTime() + backoffDelay(d.attempt - 1, this.o.retryBaseMs, this.o.retryMaxMs, 'half'));
    }
    this.o.onAttempt?.(result.ok ? DELIVERY_STATUS.DELIVERED : nextTime === null ? DELIVERY_STATUS.FAILED : 'retrying');
    const disabled = await this.store.record({ delivery: d, ok: result.ok, httpStatus: result.status, durationMs: result.durationMs, error: result.error, nextTime },
      now, this.o.retryForMs, this.o.keepMs);
    // The host only: a URL's path or query may carry the receiver's credentials.
    if (disabled) this.log.warn({ webhook: hook.id, host: new URL(hook.url).host }, 'webhook subscription disabled: its deliveries failed for api.webhooks.retry_for');
  }

  /** The body of a delivery: `{type, timestamp, data}` as Standard Webhooks has it; the task's summary, never its payload. */
  private async payload(d: Delivery): Promise<string> {
    const link = `${this.o.publicUrl}/${encodeURIComponent(d.task_type)}/${encodeURIComponent(d.identifier)}`;
    const { task, detail } = await this.store.taskSummary(d.task_id, d.event_id);
    const summary = task === null
      ? { id: d.task_id, type: d.task_type, identifier: d.identifier, status: WEBHOOK_EVENT_STATUS[d.event] ?? null, link, removed: true }
      : {
        id: d.task_id, type: d.task_type, identifier: d.identifier,
        // The status the event reports; the task may have moved on by the time it is delivered.
        status: WEBHOOK_EVENT_STATUS[d.event] ?? String(task.status), current_status: String(task.status),
        responses: {
          expected: Number(task.expected_count), received: Number(task.received_count), finished: Number(task.finished_count), failed: Number(task.failed_count),
        },
        start_time: readTime(task.start_time).toISOString(), sent_time: iso(task.sent_time), end_time: iso(task.end_time), link,
      };
    const full = JSON.stringify({ type: d.event, timestamp: d.event_time.toISOString(), data: { task: summary, event: { id: d.event_id, detail } } });
    if (Buffer.byteLength(full) <= MAX_PAYLOAD_BYTES) return full;
    return JSON.stringify({ type: d.event, timestamp: d.event_time.toISOString(), data: { task: { id: d.task_id, type: d.task_type, identifier: d.identifier, link }, truncated: true } });
  }
}
