// One task: a grid of its endpoints coloured by state, kept live from the task's stream of events; an
// endpoint's result on click; retry and cancel for tokens with the operate scope.

import { api, ApiError, findTask, openStream, query, serverNow, token } from './api.js';
import { age, badge, duration, errorText, h, readableJson, STATES, when } from './dom.js';

/** Up to this many endpoints, each cell shows its name; above it, small squares named on hover. */
const TILE_LIMIT = 60;
const HISTORY_SHOWN = 200;
/** Output lines kept on the page for the selected endpoint: the oldest go first. */
const OUTPUT_SHOWN = 5000;

/** A later state of the same round never goes back to an earlier one (events may repeat what a page shows). */
const RANK = { queued: 0, pending: 0, missing: 1, cancelled: 1, skipped: 1, running: 2, succeeded: 3, failed: 3 };
const FAILURE_OF = { 124: 'timed_out', 125: 'gave_up', 127: 'timed_out' };

/** Whether the token may retry and cancel, by token: learned once, from a request refused before it is read. */
const operateScope = new Map();

async function mayOperate(type, identifier) {
  const key = token.get() ?? '';
  if (!operateScope.has(key)) {
    try {
      // The scope is checked before the body: `{}` is refused as invalid (400) with the scope, 403 without it.
      await api(`${encodeURIComponent(type)}/${encodeURIComponent(identifier)}/retry`, { method: 'POST', body: {} });
      operateScope.set(key, true);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status === 401 || err.status >= 500) throw err;
      operateScope.set(key, err.status !== 403);
    }
  }
  return operateScope.get(key);
}

export function mountTask(root, app, type, identifier) {
  const ac = new AbortController();
  const base = `${encodeURIComponent(type)}/${encodeURIComponent(identifier)}`;
  let task = null;
  const rows = new Map();
  const cells = new Map();
  /** Endpoints whose result changed since the last page of responses was read (their payload is older). */
  const stale = new Set();
  let selected = null;
  let stream = null;
  /** The live output of the selected endpoint: its stream and the element its lines go to. */
  let output = null;
  let canOperate = null;
  let recountQueued = false;
  let refetchTimer = null;
  let refetching = false;
  /** Events that arrived while responses were being read, applied again over what was read. */
  let sinceRead = null;

  const title = h('h1');
  const statusSlot = h('span');
  const meta = h('dl.meta');
  const legend = h('div.legend', { role: 'group', 'aria-label': 'Endpoints by state' });
  const grid = h('div.grid', { role: 'list', 'aria-label': 'Endpoints', onclick: (e) => {
    const cell = e.target.closest('.cell');
    if (cell) select(cell.dataset.endpoint);
  } });
  const details = h('aside.details', {}, h('p.muted', {}, 'Click an endpoint to see its result.'));
  const payload = h('pre.json');
  const events = h('ol.events');
  const message = h('p.message', { hidden: true, role: 'status' });
  const note = h('p.note', { hidden: true });
  const retryFailed = h('button', { type: 'button', onclick: () => void retry('failed') }, 'Retry failed');
  const retryMissing = h('button', { type: 'button', onclick: () => void retry('missing') }, 'Retry missing');
  const cancel = h('button.danger', { type: 'button', onclick: () => void cancelTask() }, 'Cancel task');
  const actions = h('div.actions', {}, retryFailed, retryMissing, cancel);

  root.append(h('section.page', {},
    h('nav.crumbs', {}, h('a', { href: `#/tasks/${encodeURIComponent(type)}` }, `${type} tasks`), ' › ', identifier),
    h('div.taskhead', {}, title, statusSlot),
    meta,
    h('div.toolbar', {}, actions, note),
    message,
    legend,
    h('div.layout', {}, h('div.gridwrap', {}, grid), details),
    h('details.payload', {}, h('summary', {}, 'Task payload'), payload),
    h('section.history', {}, h('h2', {}, 'History'), events),
  ));
  title.textContent = identifier;

  function show(text, kind = 'info') {
    message.hidden = !text;
    message.textContent = text ?? '';
    message.dataset.kind = kind;
  }

  // ---- the task's head

  function renderHead() {
    statusSlot.replaceChildren(badge(task.status));
    statusSlot.dataset.status = task.status;
    const n = task.endpoints.length;
    const item = (k, v, t) => [h('dt', {}, k), h('dd', t ? { title: t } : {}, v)];
    meta.replaceChildren(
      ...item('Endpoints', String(n)),
      ...item('Started', when(task.start_time), task.start_time),
      ...item('Sent', when(task.sent_time), task.sent_time ?? undefined),
      ...item(task.status === 'CANCELLED' ? 'Cancelled' : 'Ended', when(task.end_time), task.end_time ?? undefined),
      // The execution deadline (on the server's database clock): the send plus the task's timeout.
      ...(task.timeout ? item('Timeout', `${task.timeout} s`) : []),
      ...(task.deadline ? item('Deadline', when(task.deadline), task.deadline) : []),
      ...item('Took', task.end_time ? duration(task.start_time, task.end_time) : `${age(serverNow() - Date.parse(task.start_time)).replace(' ago', '')} so far`),
    );
    payload.textContent = readableJson(task.payload);
  }

  function counts() {
    const c = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const r of rows.values()) c[r.state]++;
    return c;
  }

  function renderCounts() {
    recountQueued = false;
    if (!task) return;
    const c = counts();
    const focus = grid.dataset.focus ?? '';
    legend.replaceChildren(...STATES.map((s) => h('button.legend-item', {
      type: 'button', dataset: { state: s }, 'aria-pressed': focus === s ? 'true' : 'false',
      title: `show the ${s} endpoints`, onclick: () => { if (grid.dataset.focus === s) delete grid.dataset.focus; else grid.dataset.focus = s; renderCounts(); },
    }, h('span.swatch'), h('span.label', {}, s), h('span.count', {}, String(c[s])))));
    renderActions(c);
    renderHead();
  }

  function queueCounts() {
    if (recountQueued) return;
    recountQueued = true;
    requestAnimationFrame(renderCounts);
  }

  function renderActions(c = counts()) {
    const ended = task.status === 'DONE' || task.status === 'CANCELLED';
    retryFailed.textContent = `Retry failed (${c.failed})`;
    retryMissing.textContent = `Retry missing (${c.missing})`;
    retryFailed.disabled = canOperate !== true || c.failed === 0;
    retryMissing.disabled = canOperate !== true || c.missing === 0;
    cancel.disabled = canOperate !== true || ended;
    note.hidden = canOperate !== false;
    note.textContent = 'Retry and cancel need a token with the operate scope.';
  }

  // ---- the grid

  function cellTitle(r) {
    return r.state === 'failed' ? `${r.endpoint}: failed (${r.errnr})` : `${r.endpoint}: ${r.state}`;
  }

  function renderCell(r) {
    let cell = cells.get(r.endpoint);
    if (!cell) {
      cell = h('button.cell', { type: 'button', role: 'listitem', dataset: { endpoint: r.endpoint, state: r.state } });
      if (task.endpoints.length <= TILE_LIMIT) cell.append(h('span.name', {}, r.endpoint));
      cells.set(r.endpoint, cell);
      grid.append(cell);
    }
    if (cell.dataset.state !== r.state) cell.dataset.state = r.state;
    cell.title = cellTitle(r);
    return cell;
  }

  function setRow(r) {
    rows.set(r.endpoint, r);
    renderCell(r);
    if (selected === r.endpoint) renderDetails();
  }

  // ---- events

  /** An endpoint's change from an event, unless what is shown is already further along. */
  function change(endpoint, round, next) {
    const cur = rows.get(endpoint);
    if (!cur) return;
    if (round < cur.round || (round === cur.round && RANK[next.state] < RANK[cur.state])) return;
    stale.add(endpoint);
    setRow({ ...cur, round, ...next });
  }

  function apply(e) {
    const list = Array.isArray(e.detail?.endpoints) ? e.detail.endpoints : [];
    switch (e.kind) {
      case 'created': task.status = 'CREATED'; break;
      case 'sent':
        task.status = 'SENT';
        task.sent_time ??= e.time;
        // A rollout's batch: its endpoints leave the queue.
        for (const name of Array.isArray(e.detail?.endpoints) ? e.detail.endpoints : []) {
          const r = rows.get(name);
          if (r && r.state === 'queued') setRow({ ...r, state: 'pending', last_modified_time: e.time });
        }
        break;
      case 'missing':
        for (const x of list) change(x.endpoint, x.round, { state: 'missing', last_modified_time: e.time });
        break;
      case 'skipped':
        for (const r of rows.values()) if (r.state === 'queued') setRow({ ...r, state: 'skipped', last_modified_time: e.time });
        break;
      case 'stopped': task.status = 'STOPPED'; task.end_time = e.time; break;
      case 'received':
        for (const x of list) change(x.endpoint, x.round, { state: 'running', status: 0, attempts: x.attempt ?? 1, start_time: rows.get(x.endpoint)?.start_time ?? e.time, last_modified_time: e.time });
        break;
      case 'finished':
        for (const x of list) {
          const failed = x.errnr !== 0;
          change(x.endpoint, x.round, {
            state: failed ? 'failed' : 'succeeded', failure: failed ? FAILURE_OF[x.errnr] ?? 'error' : undefined, status: 1,
            errnr: x.errnr, errmsg: x.errmsg ?? null, attempts: x.attempt ?? rows.get(x.endpoint)?.attempts ?? 1, last_modified_time: e.time,
          });
        }
        break;
      case 'retried':
        // A rollout's retried endpoints wait for a slot, and the task stays SENT.
        task.status = task.rollout && task.status !== 'CREATED' ? 'SENT' : 'CREATED';
        task.end_time = null;
        for (const x of list) change(x.endpoint, x.round, { state: task.rollout ? 'queued' : 'pending', failure: undefined, status: null, errnr: 0, errmsg: null, payload: null, attempts: 0, start_time: null, last_modified_time: e.time });
        break;
      case 'timed_out':
        for (const x of list) change(x.endpoint, x.round, { state: 'failed', failure: 'timed_out', errnr: x.errnr ?? 127, errmsg: x.errmsg ?? 'timed_out', last_modified_time: e.time });
        break;
      case 'incomplete':
        task.status = 'INCOMPLETE';
        if (e.detail?.reason === 'deadline') task.end_time = e.time;
        for (const r of rows.values()) if (r.state === 'pending') setRow({ ...r, state: 'missing' });
        break;
      case 'done': task.status = 'DONE'; task.end_time = e.time; break;
      case 'cancelled':
        task.status = 'CANCELLED';
        task.end_time = e.time;
        for (const r of rows.values()) {
          if (r.state === 'pending' || r.state === 'missing') setRow({ ...r, state: 'cancelled' });
          else if (r.state === 'queued') setRow({ ...r, state: 'skipped' });
        }
        break;
      default: break;
    }
  }

  function onEvents(batch) {
    for (const e of batch) {
      apply(e);
      addHistory(e);
      sinceRead?.push(e);
    }
    queueCounts();
    // These change many endpoints at once, or end the task: read the responses again for the exact picture
    // (and the payloads that events do not carry).
    if (batch.some((e) => ['done', 'incomplete', 'retried', 'cancelled', 'stopped'].includes(e.kind))) scheduleRefetch(300);
  }

  function describe(e) {
    const list = Array.isArray(e.detail?.endpoints) ? e.detail.endpoints : [];
    const names = (xs) => xs.length <= 6 ? xs.join(', ') : `${xs.slice(0, 5).join(', ')} and ${xs.length - 5} more`;
    switch (e.kind) {
      case 'created': return `${e.detail?.expected ?? ''} endpoints expected${e.detail?.broadcast ? ' (broadcast)' : ''}`;
      case 'sent': return `round ${e.detail?.round ?? 0} ${Array.isArray(e.detail?.endpoints) ? `to ${names(e.detail.endpoints)}`
        : typeof e.detail?.targets === 'number' ? `to ${e.detail.targets} endpoint${e.detail.targets === 1 ? '' : 's'}`
          : e.detail?.by === 'first response' ? '(an endpoint answered before the broker confirmed the send)' : ''}`.trimEnd();
      case 'missing': return `${names(list.map((x) => x.endpoint))} never answered`;
      case 'skipped': return `${e.detail?.errors ?? '?'} errors (at most ${e.detail?.max_errors ?? '?'}): ${Array.isArray(e.detail?.endpoints) ? names(e.detail.endpoints) : '?'} skipped`;
      case 'stopped': return `${e.detail?.succeeded ?? '?'} succeeded, ${e.detail?.failed ?? '?'} failed, ${e.detail?.skipped ?? '?'} skipped`;
      case 'received': return names(list.map((x) => x.endpoint));
      case 'finished': {
        const failed = list.filter((x) => x.errnr !== 0);
        const ok = list.filter((x) => x.errnr === 0).map((x) => x.endpoint);
        return [ok.length ? `${names(ok)} succeeded` : '', failed.length ? `${names(failed.map((x) => `${x.endpoint} (errnr ${x.errnr})`))} failed` : ''].filter(Boolean).join('; ');
      }
      case 'retried': return `${names(list.map((x) => x.endpoint))} (round ${list[0]?.round ?? '?'})`;
      case 'timed_out': return `${names(list.map((x) => x.endpoint))} still running at the deadline: failed, told to abort`;
      case 'incomplete': return e.detail?.reason === 'deadline'
        ? `deadline passed (timeout ${e.detail?.timeout ?? '?'} s): ${e.detail?.missing ?? '?'} missing, ${e.detail?.timed_out ?? '?'} timed out`
        : `${e.detail?.missing ?? '?'} missing`;
      case 'done': return `${e.detail?.succeeded ?? '?'} succeeded, ${e.detail?.failed ?? '?'} failed`;
      default: return '';
    }
  }

  function addHistory(e) {
    events.prepend(h('li', { dataset: { kind: e.kind } },
      h('time', { datetime: e.time, title: e.time }, when(e.time)),
      h('span.kind', {}, e.kind), h('span.what', {}, describe(e)), e.actor ? h('span.actor', {}, `by ${e.actor}`) : null));
    while (events.childElementCount > HISTORY_SHOWN) events.lastElementChild.remove();
  }

  // ---- details of an endpoint

  function select(endpoint) {
    if (selected) cells.get(selected)?.removeAttribute('aria-current');
    if (selected !== endpoint) followOutput(endpoint);
    selected = endpoint;
    cells.get(endpoint)?.setAttribute('aria-current', 'true');
    renderDetails();
    // What an event said has no payload: read the responses once more for it.
    if (stale.has(endpoint)) scheduleRefetch(0);
  }

  /** The selected endpoint's output lines, live until its round finished (the stream's `end`). */
  function followOutput(endpoint) {
    output?.stream.close();
    const pre = h('pre.output', { dataset: { endpoint, done: 'false' }, 'aria-label': `Output of ${endpoint}`, 'aria-live': 'polite' });
    const current = { pre, stream: null };
    output = current;
    current.stream = openStream(`${base}/responses/${encodeURIComponent(endpoint)}/output`, {
      onEvents: (batch) => {
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        for (const e of batch) {
          if (e.kind === 'line') pre.append(h('span.line', { dataset: { stream: e.stream } }, `${e.text}\n`));
          else if (e.kind === 'end') {
            pre.dataset.done = 'true';
            current.stream?.close();
          }
        }
        while (pre.childElementCount > OUTPUT_SHOWN) pre.firstElementChild.remove();
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      },
      onError: (err) => { pre.dataset.done = 'true'; pre.append(h('span.line', { dataset: { stream: 'error' } }, errorText(err))); },
    });
  }

  function renderDetails() {
    const r = rows.get(selected);
    if (!r) return;
    const item = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
    const heard = r.status === null ? 'not heard from' : r.status === 0 ? 'received, running' : 'finished';
    const retryOne = canOperate && r.state !== 'running'
      ? h('button', { type: 'button', onclick: () => void retry([r.endpoint]) }, `Retry ${r.endpoint}`) : null;
    details.replaceChildren(
      h('h2', {}, r.endpoint, ' ', h('span.pill', { dataset: { state: r.state } }, r.state)),
      h('dl', {},
        ...item('errnr', String(r.errnr)),
        ...item('errmsg', r.errmsg ?? '—'),
        r.failure ? item('failure', r.failure) : null,
        ...item('round', String(r.round)),
        ...item('attempts', String(r.attempts)),
        ...item('status', heard),
        ...item('started', r.start_time ? when(r.start_time) : '—'),
        ...item('last change', when(r.last_modified_time)),
      ),
      h('h3', {}, 'Output'),
      output?.pre ?? null,
      h('h3', {}, 'Payload'),
      stale.has(r.endpoint) && r.status === 1 ? h('p.muted', {}, 'reading…') : h('pre.json', {}, readableJson(r.payload)),
      retryOne,
    );
  }

  // ---- reading

  async function readResponses() {
    const out = [];
    let cursor = null;
    do {
      const page = await api(`${base}/responses${query({ limit: 1000, cursor })}`, { signal: ac.signal });
      out.push(...page.responses);
      cursor = page.next_cursor;
    } while (cursor);
    return out;
  }

  function scheduleRefetch(ms) {
    if (refetchTimer) clearTimeout(refetchTimer);
    refetchTimer = setTimeout(() => void refetch(), ms);
  }

  async function refetch() {
    refetchTimer = null;
    if (refetching) { scheduleRefetch(300); return; }
    refetching = true;
    sinceRead = [];
    try {
      const [t, responses] = await Promise.all([findTask(type, identifier, task.start_time, ac.signal), readResponses()]);
      const during = sinceRead;
      sinceRead = null;
      task = t;
      stale.clear();
      for (const r of responses) {
        // Within a round an endpoint only moves on: a page read before an event already shown is older.
        const cur = rows.get(r.endpoint);
        if (!cur || r.round > cur.round || (r.round === cur.round && RANK[r.state] >= RANK[cur.state])) setRow(r);
        else stale.add(r.endpoint);
      }
      // What happened while reading is newer than what was read.
      for (const e of during) apply(e);
      if (during.some((e) => ['incomplete', 'retried', 'cancelled'].includes(e.kind))) scheduleRefetch(300);
      queueCounts();
    } catch (err) {
      if (!ac.signal.aborted) show(errorText(err), 'error');
    } finally {
      sinceRead = null;
      refetching = false;
    }
  }

  async function load() {
    try {
      task = await findTask(type, identifier, null, ac.signal);
      renderHead();
      // The history so far, and where the stream takes over from: the responses read after it show at
      // least what it says.
      let lastId = 0;
      let cursor = null;
      do {
        const page = await api(`${base}/events${query({ limit: 5000, cursor })}`, { signal: ac.signal });
        for (const e of page.events) {
          lastId = e.id;
          addHistory(e);
        }
        cursor = page.next_cursor;
      } while (cursor);
      const responses = await readResponses();
      for (const r of responses) setRow(r);
      renderCounts();
      stream = openStream(`${base}/events`, {
        lastEventId: lastId, onEvents, onState: (s) => app.setLive(s),
        onError: (err) => show(errorText(err), 'error'),
      });
      canOperate = await mayOperate(type, identifier);
      renderActions();
    } catch (err) {
      if (ac.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        root.querySelector('.page')?.replaceChildren(h('p.empty', {}, `No ${type} task '${identifier}'.`), h('p', {}, h('a', { href: `#/tasks/${encodeURIComponent(type)}` }, `All ${type} tasks`)));
      } else if (!(err instanceof ApiError && err.status === 401)) {
        show(errorText(err), 'error');
      }
    }
  }

  // ---- operations

  async function retry(endpoints) {
    show(null);
    try {
      const res = await api(`${base}/retry`, { method: 'POST', body: { endpoints } });
      show(`Sent again to ${res.retried.length} endpoint${res.retried.length === 1 ? '' : 's'}: ${res.retried.slice(0, 10).join(', ')}${res.retried.length > 10 ? ', …' : ''}.`, 'ok');
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) { canOperate = false; renderActions(); }
      show(errorText(err), 'error');
    }
  }

  let confirmUntil = 0;
  async function cancelTask() {
    // Cancelling cannot be undone: the first click asks, a second one within a few seconds does it.
    if (Date.now() > confirmUntil) {
      confirmUntil = Date.now() + 5000;
      cancel.textContent = 'Click again to cancel';
      setTimeout(() => { cancel.textContent = 'Cancel task'; }, 5000);
      return;
    }
    confirmUntil = 0;
    cancel.textContent = 'Cancel task';
    show(null);
    try {
      await api(`${base}/cancel`, { method: 'POST' });
      show('Cancelled: endpoints that had not started it skip it; running handlers were told to stop.', 'ok');
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) { canOperate = false; renderActions(); }
      show(errorText(err), 'error');
    }
  }

  const ticker = setInterval(() => { if (task && !task.end_time) renderHead(); }, 5000);
  void load();

  return () => {
    ac.abort();
    output?.stream.close();
    stream?.close();
    clearInterval(ticker);
    if (refetchTimer) clearTimeout(refetchTimer);
  };
}
