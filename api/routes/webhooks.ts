import { Type } from '@sinclair/typebox';
import { NotFoundError } from '../../lib/errors';
import { actorOf } from '../auth';
import type { ApiRoutes } from '../operation';
import { CreatedWebhook, DeliveriesQuery, DELIVERY_ID_PATTERN, DELIVERY_LOG_PATTERN, DeliveryAnswer, DeliveryId, DeliveryLogId, DeliveryPage, NoQuery, TestAnswer, WEBHOOK_ID_PATTERN, WebhookBody, WebhookId, WebhookList, WebhookPatchBody } from '../schemas';
import { WEBHOOK_EVENT } from '../lifecycle/states';
import { type Delivery, NOTIFY_WEBHOOK, type Webhook } from '../storage/webhook-store';
import type { WebhookService } from '../webhooks/service';
import { answers } from './answers';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

/** A subscription as the API shows it: never its secret (shown once, by POST). */
export function webhookView(w: Webhook): Record<string, unknown> {
  return {
    id: w.id, url: w.url, events: w.events, types: w.types, selector: w.selector, description: w.description, enabled: w.enabled, disabled_reason: w.disabled_reason,
    failing_since: iso(w.failing_since), previous_secret_until: iso(w.previous_secret_until), created_by: w.created_by, created_time: w.created_time.toISOString(), updated_time: w.updated_time.toISOString(),
  };
}

export function deliveryView(d: Delivery): Record<string, unknown> {
  return {
    id: d.id, message_id: `msg_${d.id}`, event: d.event,
    // An endpoint event's row has no task: its identifier is the endpoint's name.
    ...(d.event === WEBHOOK_EVENT.ENDPOINT_STALE
      ? { task: null, endpoint: d.identifier }
      : { task: { id: d.task_id, type: d.task_type, identifier: d.identifier }, endpoint: null }),
    event_time: d.event_time.toISOString(),
    status: d.status, attempt: d.attempt, http_status: d.http_status, duration_ms: d.duration_ms, last_attempt_time: iso(d.last_attempt_time),
    next_time: iso(d.next_time), last_error: d.last_error,
  };
}

const PARAMS = { id: WebhookId };
const ONE = { description: 'the subscription', schema: Type.Ref('Webhook') };

function idOf(params: Record<string, string>): number {
  if (!WEBHOOK_ID_PATTERN.test(params.id)) throw new NotFoundError(`no webhook ${params.id}`);
  return Number(params.id);
}

/** A subscription's id, or `notify`: the log of the tasks' own notifications. */
function logIdOf(params: Record<string, string>): number {
  if (!DELIVERY_LOG_PATTERN.test(params.id)) throw new NotFoundError(`no webhook ${params.id}`);
  return params.id === 'notify' ? NOTIFY_WEBHOOK : Number(params.id);
}

/**
 * `/webhooks`: subscriptions to task events, POSTed signed (Standard Webhooks) to the subscriber's URL.
 * Every route needs `admin`: a subscription sends what happens to tasks to a URL of the caller's choosing,
 * and its URL may carry the receiver's credentials.
 */
export function addWebhookRoutes(routes: ApiRoutes, service: WebhookService): void {
  routes.add({
    id: 'listWebhooks', method: 'get', path: '/webhooks', tag: 'webhooks', scope: 'admin', query: NoQuery,
    summary: 'Every webhook subscription (without its secret)',
    answers: answers({ 200: { description: 'the subscriptions', schema: WebhookList } }, [400]),
  }, async (ctx) => {
    ctx.body = { webhooks: (await service.list()).map(webhookView) };
  });

  routes.add({
    id: 'createWebhook', method: 'post', path: '/webhooks', tag: 'webhooks', scope: 'admin', query: NoQuery, body: WebhookBody,
    summary: 'Subscribe a URL to task events; the answer carries the signing secret, shown this once',
    description: 'Each event is POSTed with the headers webhook-id, webhook-timestamp and webhook-signature of the Standard Webhooks '
      + 'specification, retried with backoff for api.webhooks.retry_for; see docs/webhooks.md.',
    answers: answers({ 201: { description: 'the subscription, with its secret', schema: CreatedWebhook } }, [400, 413, 415]),
  }, async (ctx, { body }) => {
    const w = await service.create(body, actorOf(ctx));
    ctx.status = 201;
    ctx.body = { ...webhookView(w), secret: w.secret };
  });

  routes.add({
    id: 'getWebhook', method: 'get', path: '/webhooks/:id', tag: 'webhooks', scope: 'admin', params: PARAMS, query: NoQuery,
    summary: 'A webhook subscription', answers: answers({ 200: ONE }, [400, 404]),
  }, async (ctx) => {
    ctx.body = webhookView(await service.get(idOf(ctx.params)));
  });

  routes.add({
    id: 'updateWebhook', method: 'patch', path: '/webhooks/:id', tag: 'webhooks', scope: 'admin', params: PARAMS, query: NoQuery, body: WebhookPatchBody,
    summary: 'Change a webhook subscription: the fields given replace the stored ones; `enabled` disables or re-enables it',
    answers: answers({ 200: ONE }, [400, 404, 413, 415]),
  }, async (ctx, { body }) => {
    ctx.body = webhookView(await service.update(idOf(ctx.params), body));
  });

  routes.add({
    id: 'deleteWebhook', method: 'delete', path: '/webhooks/:id', tag: 'webhooks', scope: 'admin', params: PARAMS, query: NoQuery,
    summary: 'Delete a webhook subscription and its deliveries (pending ones are not sent)',
    answers: answers({ 200: { ...ONE, description: 'the deleted subscription' } }, [400, 404]),
  }, async (ctx) => {
    ctx.body = webhookView(await service.delete(idOf(ctx.params)));
  });

  routes.add({
    id: 'listWebhookDeliveries', method: 'get', path: '/webhooks/:id/deliveries', tag: 'webhooks', scope: 'admin', params: { id: DeliveryLogId }, query: DeliveriesQuery,
    summary: 'The delivery log of a subscription (or, as `notify`, of the tasks\' own notify URLs), newest first: status, HTTP code, duration, attempts, next try, last error',
    answers: answers({ 200: { description: 'a page of deliveries', schema: DeliveryPage } }, [400, 404]),
  }, async (ctx, { query }) => {
    const limit = query.limit ?? 50;
    const page = await service.deliveries(logIdOf(ctx.params), query.before ?? 0, limit);
    ctx.body = { deliveries: page.map(deliveryView), next_before: page.length === limit ? page[page.length - 1].id : null };
  });

  routes.add({
    id: 'redeliverWebhookDelivery', method: 'post', path: '/webhooks/:id/deliveries/:delivery/redeliver', tag: 'webhooks', scope: 'admin',
    params: { id: DeliveryLogId, delivery: DeliveryId }, query: NoQuery,
    summary: 'Send a delivery again, whatever its status: pending from now, with a new api.webhooks.retry_for, under the same webhook-id and body',
    answers: answers({ 200: { description: 'the delivery, pending', schema: DeliveryAnswer } }, [400, 404]),
  }, async (ctx) => {
    const id = logIdOf(ctx.params);
    if (!DELIVERY_ID_PATTERN.test(ctx.params.delivery)) throw new NotFoundError(`no delivery ${ctx.params.delivery} of webhook ${ctx.params.id}`);
    ctx.body = deliveryView(await service.redeliver(id, Number(ctx.params.delivery)));
  });

  routes.add({
    id: 'rotateWebhookSecret', method: 'post', path: '/webhooks/:id/rotate', tag: 'webhooks', scope: 'admin', params: PARAMS, query: NoQuery,
    summary: 'Give the subscription a new signing secret, answered this once',
    description: 'For api.webhooks.rotation_overlap (24 h) every delivery carries two signatures in webhook-signature, by the new secret and by the '
      + 'one replaced, so that a receiver verifies with either while it switches; then the new one only. See docs/webhooks.md.',
    answers: answers({ 200: { description: 'the subscription, with its new secret', schema: CreatedWebhook } }, [400, 404]),
  }, async (ctx) => {
    const { webhook, secret } = await service.rotate(idOf(ctx.params));
    ctx.body = { ...webhookView(webhook), secret };
  });

  routes.add({
    id: 'testWebhook', method: 'post', path: '/webhooks/:id/test', tag: 'webhooks', scope: 'admin', params: PARAMS, query: NoQuery,
    summary: 'POST a signed `webhook.test` message to the subscription\'s URL now and answer what came back (nothing is stored or retried)',
    answers: answers({ 200: { description: 'what the receiver answered', schema: TestAnswer } }, [400, 404]),
  }, async (ctx) => {
    ctx.body = await service.test(idOf(ctx.params));
  });
}
