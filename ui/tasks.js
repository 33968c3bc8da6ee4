// The task list of one type: newest first, a page at a time, filtered; tasks that are created or change
// while it is open are shown without reloading (the events of the type, as a stream).

import { api, findTask, openStream, query, serverNow } from './api.js';
import { age, badge, duration, errorText, h, STATES, STATUSES, stateBar, when } from './dom.js';

const PAGE = 50;
/** Above this many new tasks at once, the list offers to show them rather than fetching each. */
const MAX_NEW_FETCHED = 10;
/** Changed tasks refreshed per round, so that a busy system cannot flood the API from one page. */
const MAX_REFRESHED = 20;

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function mountTasks(root, app, type, params) {
  const filter = {
    status: params.get('status') ?? '', endpoint: params.get('endpoint') ?? '',
    state: params.get('state') ?? '', identifier_prefix: params.get('identifier_prefix') ?? '',
  };
  const filtered = Object.values(filter).some(Boolean);
  const ac = new AbortController();
  const rows = new Map();
  const tasks = new Map();
  let cursor = null;
  let exhausted = false;
  let loading = false;
  let newCount = 0;
  const fresh = new Set();
  /** New tasks being read: their events until then must refresh them too. */
  const creating = new Set();
  const touched = new Set();
  let flushTimer = null;

  const tbody = h('tbody');
  const summary = h('div.summary');
  const banner = h('button.banner', { type: 'button', hidden: true, onclick: () => reload() });
  const more = h('button.more', { type: 'button', onclick: () => void loadMore() }, 'Load more');
  const footer = h('div.footer');
  const message = h('p.error', { hidden: true });

  const form = h('form.filters', { onsubmit: (e) => { e.preventDefault(); applyFilter(new FormData(form)); } },
    h('label', {}, 'Status ', h('select', { name: 'status' }, h('option', { value: '' }, 'any'), STATUSES.map((s) => h('option', { value: s, selected: s === filter.status }, s)))),
    h('label', {}, 'Endpoint ', h('input', { name: 'endpoint', value: filter.endpoint, placeholder: 'name', size: 14, spellcheck: 'false' })),
    h('label', {}, 'State ', h('select', { name: 'state' }, h('option', { value: '' }, 'any'), STATES.map((s) => h('option', { value: s, selected: s === filter.state }, s)))),
    h('label', {}, 'Identifier ', h('input', { name: 'identifier_prefix', value: filter.identifier_prefix, placeholder: 'starts with', size: 16, spellcheck: 'false' })),
    h('button', { type: 'submit' }, 'Filter'),
    filtered ? h('a.clear', { href: `#/tasks/${encodeURIComponent(type)}` }, 'Clear') : null,
  );

  root.append(h('section.page', {},
    h('div.pagehead', {}, h('h1', {}, `${type} tasks`), h('span.sub', {}, 'newest first')),
    form, summary, message, banner,
    h('table.tasks', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Identifier'), h('th', {}, 'Status'), h('th.endpoints', {}, 'Endpoints'), h('th', {}, 'Started'), h('th', {}, 'Took'))),
      tbody),
    footer,
  ));

  function applyFilter(data) {
    const q = {};
    for (const [k, v] of data.entries()) if (String(v).trim()) q[k] = String(v).trim();
    const qs = new URLSearchParams(q).toString();
    location.hash = `#/tasks/${encodeURIComponent(type)}${qs ? `?${qs}` : ''}`;
  }

  function progress(t) {
    const c = t.responses;
    const parts = [`${c.finished}/${c.expected} finished`];
    if (c.failed) parts.push(`${c.failed} failed`);
    if (c.running) parts.push(`${c.running} running`);
    if (c.missing) parts.push(`${c.missing} missing`);
    if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
    return parts.join(' · ');
  }

  function renderRow(t) {
    const href = `#/task/${encodeURIComponent(type)}/${encodeURIComponent(t.identifier)}`;
    return h('tr', { dataset: { identifier: t.identifier, status: t.status } },
      h('td.ident', {}, h('a', { href }, t.identifier)),
      h('td', {}, badge(t.status)),
      h('td.endpoints', {}, stateBar(t.responses), h('span.progress', {}, progress(t))),
      h('td.time', { title: t.start_time }, when(t.start_time)),
      h('td.time', {}, t.end_time ? duration(t.start_time, t.end_time) : h('span.muted', {}, age(serverNow() - Date.parse(t.start_time)).replace(' ago', ' so far'))),
    );
  }

  function put(t, { prepend = false } = {}) {
    tasks.set(t.identifier, t);
    const row = renderRow(t);
    const old = rows.get(t.identifier);
    if (old) {
      row.className = old.className;
      old.replaceWith(row);
    } else if (prepend) {
      row.classList.add('fresh');
      tbody.prepend(row);
    } else {
      tbody.append(row);
    }
    rows.set(t.identifier, row);
  }

  function renderSummary() {
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const t of tasks.values()) counts[t.status]++;
    const chip = (label, n, status) => h('a.chip', {
      href: `#/tasks/${encodeURIComponent(type)}${query({ ...filter, status })}`, 'aria-current': (filter.status || '') === status ? 'true' : null,
      dataset: { status: status || 'all' },
    }, h('span.label', {}, label), h('span.count', {}, String(n)));
    summary.replaceChildren(
      chip('All', tasks.size, ''),
      ...STATUSES.filter((s) => counts[s] || s === filter.status).map((s) => chip(s, counts[s], s)),
      h('span.muted', {}, exhausted ? `${plural(tasks.size, 'task')}${filtered ? ' match' : ''}` : `counted over the ${tasks.size} loaded; more below`),
    );
    footer.replaceChildren(exhausted
      ? (tasks.size ? '' : h('p.empty', {}, filtered ? 'No task matches these filters.' : `No ${type} task yet.`))
      : more);
  }

  async function loadMore() {
    if (loading || exhausted) return;
    loading = true;
    more.disabled = true;
    more.textContent = 'Loading…';
    try {
      const page = await api(`${encodeURIComponent(type)}${query({ ...filter, limit: PAGE, cursor })}`, { signal: ac.signal });
      for (const t of page.tasks) if (!rows.has(t.identifier)) put(t);
      cursor = page.next_cursor;
      exhausted = cursor === null;
      message.hidden = true;
    } catch (err) {
      if (ac.signal.aborted) return;
      message.hidden = false;
      message.textContent = errorText(err);
    } finally {
      loading = false;
      more.disabled = false;
      more.textContent = 'Load more';
      renderSummary();
    }
  }

  function reload() {
    tbody.replaceChildren();
    rows.clear();
    tasks.clear();
    cursor = null;
    exhausted = false;
    newCount = 0;
    banner.hidden = true;
    void loadMore();
  }

  /** Whether a task belongs in this filtered list (the state of a named endpoint is not known here: kept). */
  function matches(t) {
    if (filter.status && t.status !== filter.status) return false;
    if (filter.endpoint && !t.endpoints.includes(filter.endpoint)) return false;
    if (filter.state && !filter.endpoint && !t.responses[filter.state]) return false;
    if (filter.identifier_prefix && !t.identifier.startsWith(filter.identifier_prefix)) return false;
    return true;
  }

  async function flush() {
    flushTimer = null;
    if (ac.signal.aborted) return;
    const created = [...fresh];
    fresh.clear();
    if (created.length > MAX_NEW_FETCHED) {
      newCount += created.length;
    } else {
      for (const identifier of created) {
        creating.add(identifier);
        try {
          const t = await findTask(type, identifier, null, ac.signal);
          if (rows.has(identifier)) put(t);
          else if (matches(t)) put(t, { prepend: true });
        } catch { /* gone, or the API is unavailable: the next event tries again */ }
        creating.delete(identifier);
      }
    }
    const changed = [...touched].slice(0, MAX_REFRESHED);
    for (const identifier of changed) {
      touched.delete(identifier);
      const known = tasks.get(identifier);
      if (!known) continue; // filtered out, or the list was reloaded
      try {
        put(await findTask(type, identifier, known.start_time, ac.signal));
      } catch { /* as above */ }
    }
    if (ac.signal.aborted) return;
    banner.hidden = newCount === 0;
    banner.textContent = `${newCount} new task${newCount === 1 ? '' : 's'}: show`;
    renderSummary();
    if (touched.size) schedule();
  }

  function schedule() {
    flushTimer ??= setTimeout(() => void flush(), 400);
  }

  const stream = openStream(`events${query({ type })}`, {
    onState: (s) => app.setLive(s),
    onEvents(events) {
      for (const e of events) {
        if (e.kind === 'created') fresh.add(e.identifier);
        else if (rows.has(e.identifier) || fresh.has(e.identifier) || creating.has(e.identifier)) touched.add(e.identifier);
      }
      schedule();
    },
  });

  // The ages of unfinished tasks move on.
  const ticker = setInterval(() => {
    for (const [identifier, row] of rows) {
      const t = tasks.get(identifier);
      if (!t.end_time) row.lastElementChild.replaceChildren(h('span.muted', {}, age(serverNow() - Date.parse(t.start_time)).replace(' ago', ' so far')));
    }
  }, 5000);

  void loadMore();

  return () => {
    ac.abort();
    stream.close();
    clearInterval(ticker);
    if (flushTimer) clearTimeout(flushTimer);
  };
}
