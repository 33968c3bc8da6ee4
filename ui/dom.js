// Small helpers for building the page: elements, times, and the vocabulary of states.

/**
 * `h('a.link', { href }, 'text', child)`: an element with classes, attributes (`on*` ones are listeners,
 * `dataset` an object) and children; text is always set as text, never parsed as HTML.
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className += ` ${v}`;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Endpoint states, in the order the page lists them. */
export const STATES = ['queued', 'pending', 'running', 'succeeded', 'failed', 'missing', 'skipped', 'cancelled'];
export const STATUSES = ['CREATED', 'SENT', 'DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED'];

export const badge = (status) => h('span.badge', { dataset: { status } }, status);

/** "12 s ago", "4 min ago": the age of a time, for people. */
export function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A time as the local date and time, to the second. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** How long from one time to another: "850 ms", "2.4 s", "3 min 5 s". */
export function duration(fromIso, toIso) {
  if (!fromIso || !toIso) return '—';
  const ms = Date.parse(toIso) - Date.parse(fromIso);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A stacked bar of a task's endpoints by state. */
export function stateBar(counts) {
  const total = counts.expected || 1;
  const bar = h('div.statebar', { role: 'img', 'aria-label': STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(', ') });
  for (const s of STATES) {
    if (!counts[s]) continue;
    const part = h('span', { dataset: { state: s }, title: `${counts[s]} ${s}` });
    part.style.flexGrow = String(counts[s] / total);
    bar.append(part);
  }
  return bar;
}

/** An error for the page: the API's message, and what to do about a missing scope. */
/**
 * A JSON value to read: indented, and a string's newlines and tabs shown as such (a command's output reads
 * as lines), which makes the text a view rather than JSON to copy; the API's answer has the exact value.
 */
export function readableJson(value) {
  return JSON.stringify(value ?? null, null, 2).replace(/(?<!\\)((?:\\\\)*)\\([nt])/g, (_m, slashes, c) => `${slashes}${c === 'n' ? '\n' : '\t'}`);
}

export function errorText(err) {
  if (err?.status === 403) return `${err.message}: this token may not do that.`;
  return err?.message ?? String(err);
}
