// The webhook subscriptions (#/webhooks): each one's URL, events, filters, whether it is active, and how its
// last delivery went; and a subscription's delivery log (#/webhooks/<id>), with redeliver and test buttons.
// Reading them needs the admin scope, as the API's /webhooks routes do.

import { api } from './api.js';
import { errorText, h, when } from './dom.js';

/** Deliveries go out every api.webhooks.interval (1 s by default): read again this often. */
const REFRESH_MS = 2000;
/** The delivery log's page: the newest this many. */
const LOG_LIMIT = 100;

const filters = (w) => [w.types ? `types: ${w.types.join(', ')}` : null, w.selector ? `selector: ${w.selector}` : null].filter(Boolean).join('; ') || 'all tasks';

/** How a delivery went, in a few words: "delivered (204)", "pending, attempt 3", "failed (500)". */
function outcome(d) {
  if (!d) return 'none yet';
  const code = d.http_status === null ? '' : ` (${d.http_status})`;
  if (d.status === 'pending') return d.attempt > 0 ? `pending after ${d.attempt} attempt${d.attempt === 1 ? '' : 's'}${code}` : 'pending';
  return `${d.status}${code}`;
}

export function mountWebhooks(root, app) {
  const ac = new AbortController();
  const tbody = h('tbody');
  const summary = h('p.summary-line');
  const message = h('p.error', { hidden: true });

  root.append(h('section.page', {},
    h('div.pagehead', {}, h('h1', {}, 'Webhooks'), h('span.sub', {}, 'task events POSTed, signed (Standard Webhooks), to each subscription\'s URL')),
    summary, message,
    h('table.webhooks', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'URL'), h('th', {}, 'Events'), h('th', {}, 'Filters'), h('th', {}, 'Status'),
        h('th', {}, 'Last delivery'), h('th', {}, 'Description'))),
      tbody),
  ));

  function render(hooks, lasts) {
    tbody.replaceChildren(...hooks.map((w, i) => {
      const last = lasts[i];
      return h('tr', { dataset: { id: String(w.id), enabled: String(w.enabled) } },
        h('td.ident', {}, h('a', { href: `#/webhooks/${w.id}` }, String(w.id))),
        h('td.ident', {}, w.url),
        h('td', {}, w.events.join(', ')),
        h('td', {}, filters(w)),
        h('td', { title: w.disabled_reason ?? '' }, h('span.alive', { dataset: { alive: String(w.enabled) } }, w.enabled ? 'active' : 'disabled'),
          w.enabled ? null : h('div.error-text', {}, w.disabled_reason ?? '')),
        h('td.last', { dataset: { status: last?.status ?? 'none' }, title: last?.last_error ?? '' },
          outcome(last), last?.last_attempt_time ? h('div.sub', {}, when(last.last_attempt_time)) : null),
        h('td', {}, w.description ?? ''),
      );
    }));
    const disabled = hooks.filter((w) => !w.enabled).length;
    summary.textContent = hooks.length
      ? `${hooks.length} subscription${hooks.length === 1 ? '' : 's'}: ${hooks.length - disabled} active, ${disabled} disabled.`
      : 'No subscriptions. Create one with POST /webhooks or `tasker webhook add`.';
  }

  async function refresh() {
    try {
      const { webhooks } = await api('webhooks', { signal: ac.signal });
      // One small read per subscription: the list does not carry the last delivery.
      const lasts = await Promise.all(webhooks.map(async (w) => (await api(`webhooks/${w.id}/deliveries?limit=1`, { signal: ac.signal })).deliveries[0]));
      message.hidden = true;
      render(webhooks, lasts);
      app.setLive('live');
    } catch (err) {
      if (ac.signal.aborted) return;
      message.hidden = false;
      message.textContent = errorText(err);
      app.setLive('reconnecting');
    }
  }

  const poll = setInterval(() => void refresh(), REFRESH_MS);
  void refresh();
  return () => {
    ac.abort();
    clearInterval(poll);
  };
}

export function mountWebhook(root, app, id) {
  const ac = new AbortController();
  const head = h('p.summary-line');
  const tbody = h('tbody');
  const message = h('p.error', { hidden: true });
  const tested = h('p.summary-line.test-result', { hidden: true });
  const test = h('button', { type: 'button', onclick: () => void sendTest() }, 'Send test');

  root.append(h('section.page', {},
    h('div.pagehead', {}, h('h1', {}, `Webhook ${id}`), h('a.sub', { href: '#/webhooks' }, 'all webhooks')),
    head, h('div.actions', {}, test), tested, message,
    h('table.deliveries', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Delivery'), h('th', {}, 'Event'), h('th', {}, 'About'), h('th', {}, 'Status'), h('th', {}, 'HTTP'),
        h('th', {}, 'Duration'), h('th', {}, 'Attempt'), h('th', {}, 'Next try'), h('th', {}, 'Last error'), h('th', {}, ''))),
      tbody),
  ));

  const fail = (err) => {
    message.hidden = false;
    message.textContent = errorText(err);
  };

  async function redeliver(delivery) {
    try {
      await api(`webhooks/${id}/deliveries/${delivery}/redeliver`, { method: 'POST' });
      await refresh();
    } catch (err) {
      fail(err);
    }
  }

  async function sendTest() {
    test.disabled = true;
    try {
      const r = await api(`webhooks/${id}/test`, { method: 'POST' });
      tested.hidden = false;
      tested.dataset.ok = String(r.ok);
      tested.textContent = r.ok
        ? `Test ${r.message_id}: answered ${r.http_status} in ${r.duration_ms} ms.`
        : `Test ${r.message_id} failed: ${r.error ?? `answered ${r.http_status}`}.`;
    } catch (err) {
      fail(err);
    } finally {
      test.disabled = false;
    }
  }

  function about(d) {
    if (!d.task) return `endpoint ${d.endpoint}`;
    return h('a', { href: `#/task/${encodeURIComponent(d.task.type)}/${encodeURIComponent(d.task.identifier)}` }, `${d.task.type}/${d.task.identifier}`);
  }

  function render(w, deliveries) {
    head.replaceChildren(h('span.ident', {}, w.url), ` — ${w.events.join(', ')}; ${filters(w)}; `,
      h('span.alive', { dataset: { alive: String(w.enabled) } }, w.enabled ? 'active' : `disabled: ${w.disabled_reason ?? ''}`));
    tbody.replaceChildren(...deliveries.map((d) => h('tr', { dataset: { id: String(d.id), status: d.status } },
      h('td.ident', { title: d.message_id }, String(d.id)),
      h('td', {}, d.event),
      h('td.ident', {}, about(d)),
      h('td.status', {}, d.status),
      h('td.http', {}, d.http_status === null ? '—' : String(d.http_status)),
      h('td', {}, d.duration_ms === null ? '—' : `${d.duration_ms} ms`),
      h('td.attempt', {}, String(d.attempt)),
      h('td.time', {}, d.next_time ? when(d.next_time) : '—'),
      h('td.error-text', {}, d.last_error ?? ''),
      h('td', {}, h('button', { type: 'button', onclick: () => void redeliver(d.id) }, 'Redeliver')),
    )));
    if (!deliveries.length) tbody.append(h('tr', {}, h('td.empty', { colspan: '10' }, 'No deliveries yet.')));
  }

  async function refresh() {
    try {
      const [w, page] = await Promise.all([api(`webhooks/${id}`, { signal: ac.signal }), api(`webhooks/${id}/deliveries?limit=${LOG_LIMIT}`, { signal: ac.signal })]);
      message.hidden = true;
      render(w, page.deliveries);
      app.setLive('live');
    } catch (err) {
      if (ac.signal.aborted) return;
      fail(err);
      app.setLive('reconnecting');
    }
  }

  const poll = setInterval(() => void refresh(), REFRESH_MS);
  void refresh();
  return () => {
    ac.abort();
    clearInterval(poll);
  };
}
