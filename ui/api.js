// Calls to the tasker API: the bearer token, JSON answers and errors, and streams of server-sent events.

const TOKEN_KEY = 'tasker.token';

/** The API is served from the same origin, one level above /ui/ (also behind a proxy that adds a prefix). */
const BASE = location.pathname.replace(/ui\/[^/]*$/, '');

export const token = {
  get() { return localStorage.getItem(TOKEN_KEY); },
  set(value) { localStorage.setItem(TOKEN_KEY, value); },
  clear() { localStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => undefined;
/** Called whenever the API answers 401: the page then asks for a token. */
export function onUnauthorized(fn) { unauthorized = fn; }

/** The difference between the server's clock and this browser's, from the Date header (1 s resolution). */
let clockSkew = 0;
export const serverNow = () => Date.now() + clockSkew;

function noteClock(res) {
  const date = Date.parse(res.headers.get('date') ?? '');
  if (Number.isNaN(date)) return;
  const skew = date - Date.now();
  // Below the header's resolution the two clocks are taken to agree.
  clockSkew = Math.abs(skew) > 2000 ? skew : 0;
}

function headers(extra) {
  const h = { accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

/** `path` relative to the API's root, e.g. `worker?limit=50`. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }), signal, cache: 'no-store' };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(BASE + path, init);
  noteClock(res);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* an answer that is not JSON (a proxy's page) */ }
  if (!res.ok) {
    if (res.status === 401) unauthorized();
    throw new ApiError(res.status, json?.error?.code ?? `http_${res.status}`, json?.error?.message ?? `${res.status} ${res.statusText}`);
  }
  return json;
}

/** A query string of the values that are set. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Parses one frame of a text/event-stream (the lines between two blank lines). */
function parseFrame(frame) {
  let id = null;
  let event = 'message';
  const data = [];
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  return { id, event, data: data.join('\n') };
}

/**
 * Reads a stream of server-sent events with fetch(), since EventSource cannot send the Authorization
 * header. Events arrive in batches (those of one network chunk); a dropped connection is opened again
 * with Last-Event-ID, so nothing is missed or seen twice. `onState` hears 'live', 'reconnecting' and 'off'.
 */
export function openStream(path, { lastEventId = null, onEvents, onState = () => undefined, onError = () => undefined }) {
  let last = lastEventId;
  let stopped = false;
  let controller = null;
  let delay = 1000;

  async function readOnce() {
    controller = new AbortController();
    const h = headers({ accept: 'text/event-stream' });
    if (last !== null) h['last-event-id'] = String(last);
    const res = await fetch(BASE + path, { headers: h, signal: controller.signal, cache: 'no-store' });
    if (!res.ok) {
      const json = await res.json().catch(() => null);
      const err = new ApiError(res.status, json?.error?.code ?? `http_${res.status}`, json?.error?.message ?? res.statusText);
      if (res.status === 401) unauthorized();
      throw err;
    }
    onState('live');
    delay = 1000;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      const frames = buffer.split('\n\n');
      buffer = frames.pop();
      const batch = [];
      for (const frame of frames) {
        const e = parseFrame(frame);
        if (!e) continue;
        if (e.id !== null) last = e.id;
        try { batch.push({ id: Number(e.id), kind: e.event, ...JSON.parse(e.data) }); } catch { /* not an event of ours */ }
      }
      if (batch.length) onEvents(batch);
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await readOnce();
      } catch (err) {
        if (stopped) return;
        // Retrying cannot help these: the page shows why and waits for the user.
        if (err instanceof ApiError && [400, 401, 403, 404].includes(err.status)) {
          onState('off');
          onError(err);
          return;
        }
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();

  return {
    close() {
      stopped = true;
      controller?.abort();
      onState('off');
    },
  };
}

/**
 * One task with its counts, without its responses (a task may have thousands): the list filtered to its
 * identifier, and to its start time when known. A task not found that way (more than 50 newer tasks whose
 * identifiers start with this one) is read whole.
 */
export async function findTask(type, identifier, startTime = null, signal = undefined) {
  const range = startTime ? { since: startTime, until: new Date(Date.parse(startTime) + 1).toISOString() } : {};
  const page = await api(`${encodeURIComponent(type)}${query({ identifier_prefix: identifier, limit: 50, ...range })}`, { signal });
  const found = page.tasks.find((t) => t.identifier === identifier);
  if (found) return found;
  return (await api(`${encodeURIComponent(type)}/${encodeURIComponent(identifier)}`, { signal })).task;
}
