// The schedules: what each creates and when, its next firing, and the last task it created.

import { api, serverNow } from './api.js';
import { errorText, h, when } from './dom.js';

/** Next firings come due often (every few seconds for some): read again this often. */
const REFRESH_MS = 2000;

/** "in 12 s", "in 4 min": how far off a time is, for people. */
function until(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `in ${s} s`;
  if (s < 3600) return `in ${Math.floor(s / 60)} min`;
  if (s < 86400) return `in ${Math.floor(s / 3600)} h`;
  return `in ${Math.floor(s / 86400)} d`;
}

export function mountSchedules(root, app) {
  const ac = new AbortController();
  const tbody = h('tbody');
  const summary = h('p.summary-line');
  const message = h('p.error', { hidden: true });
  let schedules = [];

  root.append(h('section.page', {},
    h('div.pagehead', {}, h('h1', {}, 'Schedules'), h('span.sub', {}, 'each firing creates a task named <schedule>-<scheduled time in UTC>')),
    summary, message,
    h('table.schedules', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Task type'), h('th', {}, 'When'), h('th', {}, 'Next firing'),
        h('th', {}, 'Paused'), h('th', {}, 'Last task'), h('th', {}, 'Last error'))),
      tbody),
  ));

  function nextCell(s) {
    if (s.paused) return h('td.time.next', {}, 'paused');
    if (!s.next_fire_time) return h('td.time.next', {}, 'never');
    return h('td.time.next', { title: s.next_fire_time, dataset: { next: s.next_fire_time } },
      `${when(s.next_fire_time)} (${until(Date.parse(s.next_fire_time) - serverNow())})`);
  }

  function render() {
    tbody.replaceChildren(...schedules.map((s) => h('tr', { dataset: { name: s.name, paused: String(s.paused) } },
      h('td.ident', {}, s.name),
      h('td', {}, s.task_type),
      h('td', {}, s.cron ? `${s.cron} (${s.timezone})` : `every ${s.every}`),
      nextCell(s),
      h('td', {}, h('span.alive', { dataset: { alive: String(!s.paused) } }, s.paused ? 'paused' : 'active')),
      h('td.ident', {}, s.last_task_identifier
        ? h('a', { href: `#/task/${encodeURIComponent(s.task_type)}/${encodeURIComponent(s.last_task_identifier)}` }, s.last_task_identifier)
        : '—'),
      h('td.error-text', {}, s.last_error ?? ''),
    )));
    const paused = schedules.filter((s) => s.paused).length;
    summary.textContent = schedules.length
      ? `${schedules.length} schedule${schedules.length === 1 ? '' : 's'}: ${schedules.length - paused} active, ${paused} paused.`
      : 'No schedules. Create one with POST /schedules or `tasker schedule create`.';
  }

  async function refresh() {
    try {
      schedules = (await api('schedules', { signal: ac.signal })).schedules;
      message.hidden = true;
      render();
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
