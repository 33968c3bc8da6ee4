// The dashboard: hash routes (#/tasks/<type>, #/task/<type>/<identifier>, #/endpoints, #/schedules, #/webhooks,
// #/webhooks/<id>), the navigation,
// and the token prompt. Each view mounts into <main> and returns the function that unmounts it.

import { api, onUnauthorized, token } from './api.js';
import { h } from './dom.js';
import { mountEndpoints } from './endpoints.js';
import { mountSchedules } from './schedules.js';
import { mountTask } from './task.js';
import { mountTasks } from './tasks.js';
import { mountWebhook, mountWebhooks } from './webhooks.js';

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const live = document.getElementById('live');
const signout = document.getElementById('signout');
const dialog = document.getElementById('signin');
const form = document.getElementById('signin-form');
const input = document.getElementById('token');
const signinError = document.getElementById('signin-error');

let taskTypes = [];
let unmount = () => undefined;

/** What the views share: the task types, and the live indicator. */
const app = {
  get taskTypes() { return taskTypes; },
  setLive(state) { live.dataset.live = state; live.title = `live updates: ${state}`; },
};

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(qs) };
}

function renderNav(parts) {
  nav.replaceChildren(
    ...taskTypes.map((t) => h('a', { href: `#/tasks/${encodeURIComponent(t)}`, 'aria-current': (parts[0] === 'tasks' || parts[0] === 'task') && parts[1] === t ? 'page' : null }, t)),
    h('a', { href: '#/endpoints', 'aria-current': parts[0] === 'endpoints' ? 'page' : null }, 'Endpoints'),
    h('a', { href: '#/schedules', 'aria-current': parts[0] === 'schedules' ? 'page' : null }, 'Schedules'),
    h('a', { href: '#/webhooks', 'aria-current': parts[0] === 'webhooks' ? 'page' : null }, 'Webhooks'),
  );
  signout.hidden = !token.get();
}

function route() {
  unmount();
  unmount = () => undefined;
  app.setLive('off');
  const { parts, params } = parseRoute();
  renderNav(parts);
  view.replaceChildren();
  if (parts[0] === 'tasks' && taskTypes.includes(parts[1])) {
    unmount = mountTasks(view, app, parts[1], params);
  } else if (parts[0] === 'task' && taskTypes.includes(parts[1]) && parts[2]) {
    unmount = mountTask(view, app, parts[1], parts[2]);
  } else if (parts[0] === 'endpoints') {
    unmount = mountEndpoints(view, app);
  } else if (parts[0] === 'schedules') {
    unmount = mountSchedules(view, app);
  } else if (parts[0] === 'webhooks' && /^[1-9][0-9]*$/.test(parts[1] ?? '')) {
    unmount = mountWebhook(view, app, parts[1]);
  } else if (parts[0] === 'webhooks') {
    unmount = mountWebhooks(view, app);
  } else if (taskTypes.length) {
    location.replace(`#/tasks/${encodeURIComponent(taskTypes[0])}`);
  } else {
    view.append(h('p.empty', {}, 'This API has no task types configured.'));
  }
}

function askForToken(message) {
  signinError.hidden = !message;
  signinError.textContent = message ?? '';
  if (!dialog.open) dialog.showModal();
  input.focus();
}

// Several calls may fail at once; the prompt appears once, and says so when a stored token stopped working.
onUnauthorized(() => {
  if (dialog.open) return;
  const had = token.get();
  token.clear();
  unmount();
  unmount = () => undefined;
  app.setLive('off');
  renderNav(parseRoute().parts);
  askForToken(had ? 'The API did not accept the token (unknown, revoked or mistyped).' : null);
});

form.addEventListener('submit', (e) => {
  e.preventDefault();
  const value = input.value.trim();
  if (!value) return;
  token.set(value);
  input.value = '';
  dialog.close();
  route();
});

// The prompt is the way in: Escape must not leave a page that cannot load.
dialog.addEventListener('cancel', (e) => e.preventDefault());

signout.addEventListener('click', () => {
  token.clear();
  location.reload();
});

async function start() {
  // The document needs no token, and names the configured task types in its {type} parameter.
  try {
    const doc = await api('openapi.json');
    const param = doc.paths?.['/{type}']?.get?.parameters?.find((p) => p.name === 'type');
    taskTypes = param?.schema?.enum ?? [];
  } catch (err) {
    view.replaceChildren(h('p.error', {}, `The API could not be reached: ${err.message}`));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

void start();
