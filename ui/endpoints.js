// The endpoints that registered: their task types, labels and facts, and how long ago each was last heard
// from; a label selector narrows the list, and says how many endpoints it matches as it is typed.

import { api, query, serverNow } from './api.js';
import { age, errorText, h, when } from './dom.js';

const PAGE = 100;
/** The pages loaded are read again this often, as long as they are few. */
const REFRESH_MS = 5000;
const MAX_REFRESHED_PAGES = 5;
/** A selector being typed is tried this long after the last key stroke. */
const PREVIEW_DELAY_MS = 300;

const labelText = (labels) => Object.keys(labels ?? {}).sort().map((k) => `${k}=${labels[k]}`).join(', ');
const factText = (f) => [f?.hostname, f?.os && f?.arch ? `${f.os}/${f.arch}` : f?.os, f?.version ? `tasker ${f.version}` : null].filter(Boolean).join(' · ');

export function mountEndpoints(root, app) {
  const ac = new AbortController();
  const tbody = h('tbody');
  const summary = h('p.summary-line');
  const message = h('p.error', { hidden: true });
  const more = h('button.more', { type: 'button', onclick: () => void loadMore() }, 'Load more');
  const footer = h('div.footer');
  /** The pages loaded so far, by the cursor that reads each. */
  const pages = [];
  let next = null;
  let exhausted = false;
  /** The selector the list shows (applied), and the count it matched. */
  let selector = '';
  let matched = null;
  const input = h('input', { name: 'selector', placeholder: 'role=web,region in (eu,us),!canary', size: 36, spellcheck: 'false', autocomplete: 'off' });
  const preview = h('span.preview', { 'aria-live': 'polite' });
  const form = h('form.filters', { onsubmit: (e) => { e.preventDefault(); void apply(input.value.trim()); } },
    h('label', {}, 'Selector ', input), h('button', { type: 'submit' }, 'Filter'), preview);
  let previewTimer = null;
  input.addEventListener('input', () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(() => void showPreview(input.value.trim()), PREVIEW_DELAY_MS);
  });

  root.append(h('section.page', {},
    h('div.pagehead', {}, h('h1', {}, 'Endpoints'), h('span.sub', {}, 'by name; alive: a heartbeat within three heartbeat intervals; stale: none within api.endpoint_stale_after')),
    form, summary, message,
    h('table.endpoints', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Alive'), h('th', {}, 'Last heartbeat'), h('th', {}, 'Task types'), h('th', {}, 'Labels'), h('th', {}, 'Facts'), h('th', {}, 'First seen'))),
      tbody),
    footer,
  ));

  function render() {
    const all = pages.flatMap((p) => p.endpoints);
    const now = serverNow();
    tbody.replaceChildren(...all.map((e) => h('tr', { dataset: { name: e.name, alive: String(e.alive) } },
      h('td.ident', {}, e.name),
      h('td', {}, h('span.alive', { dataset: { alive: String(e.alive) } }, e.alive ? 'alive' : e.stale ? 'stale' : 'silent')),
      h('td.time', { title: e.last_heartbeat, dataset: { heartbeat: e.last_heartbeat } }, age(now - Date.parse(e.last_heartbeat))),
      h('td', {}, e.task_types.join(', ')),
      h('td.labels', {}, labelText(e.labels)),
      h('td.facts', { title: JSON.stringify(e.facts ?? {}) }, factText(e.facts)),
      h('td.time', { title: e.first_seen }, when(e.first_seen)),
    )));
    const alive = all.filter((e) => e.alive).length;
    const stale = all.filter((e) => e.stale).length;
    const of = selector ? ` matching ${selector} (${matched} in all)` : '';
    summary.textContent = all.length
      ? `${all.length} endpoint${all.length === 1 ? '' : 's'}${of}${exhausted ? '' : ' loaded'}: ${alive} alive, ${all.length - alive} silent${stale ? ` (${stale} stale)` : ''}.`
      : selector ? `No endpoint matches ${selector}.` : 'No endpoint has registered yet.';
    footer.replaceChildren(exhausted ? '' : more);
  }

  async function read(cursor, sel = selector) {
    return api(`endpoints${query({ limit: PAGE, cursor, selector: sel })}`, { signal: ac.signal });
  }

  /** "matches N endpoints" for what is typed, or where it goes wrong; the list stays as it is. */
  async function showPreview(text) {
    if (text === '') { preview.textContent = ''; return; }
    try {
      const page = await read(null, text);
      preview.textContent = `matches ${page.count} endpoint${page.count === 1 ? '' : 's'}`;
      preview.className = 'preview';
    } catch (err) {
      if (ac.signal.aborted) return;
      preview.textContent = errorText(err);
      preview.className = 'preview error';
    }
  }

  async function apply(text) {
    selector = text;
    pages.splice(0, pages.length);
    next = null;
    exhausted = false;
    await loadMore();
  }

  async function loadMore() {
    more.disabled = true;
    try {
      const cursor = next;
      const page = await read(cursor);
      pages.push({ cursor, endpoints: page.endpoints });
      matched = page.count ?? null;
      next = page.next_cursor;
      exhausted = next === null;
      message.hidden = true;
      render();
    } catch (err) {
      if (ac.signal.aborted) return;
      message.hidden = false;
      message.textContent = errorText(err);
    } finally {
      more.disabled = false;
    }
  }

  async function refresh() {
    if (pages.length === 0 || pages.length > MAX_REFRESHED_PAGES) return;
    try {
      const fresh = [];
      for (const p of pages) fresh.push({ cursor: p.cursor, endpoints: (await read(p.cursor)).endpoints });
      pages.splice(0, pages.length, ...fresh);
      render();
      app.setLive('live');
    } catch {
      if (!ac.signal.aborted) app.setLive('reconnecting');
    }
  }

  // Ages move on between refreshes; each row knows its heartbeat.
  const tick = setInterval(() => {
    const now = serverNow();
    for (const td of tbody.querySelectorAll('td[data-heartbeat]')) td.textContent = age(now - Date.parse(td.dataset.heartbeat));
  }, 1000);
  const poll = setInterval(() => void refresh(), REFRESH_MS);
  void loadMore().then(() => { if (!ac.signal.aborted && pages.length) app.setLive('live'); });

  return () => {
    ac.abort();
    clearInterval(tick);
    clearInterval(poll);
    clearTimeout(previewTimer);
  };
}
