import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { projectRoot } from '../../config/loader';
import { ensureDebianPackage } from '../support/debian';
import { Harness } from '../support/harness';

// The functions given to page.evaluate and waitForFunction run in the page: its globals, loosely typed here.
declare const window: any, document: any, localStorage: any, location: any, MutationObserver: any;

const CHROMIUM = '/usr/bin/chromium';
// The machine has no internet: without the flags that stop Chromium's own background connections, its
// attempts to reach Google's services fail and slow it down.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const ROOT = projectRoot();
const OUTPUT = path.join(ROOT, 'test-output', 'dashboard');
const SCREENSHOTS = path.join(ROOT, 'docs', 'screenshots');
const TYPES = ['worker', 'deploy'];
const name = (i: number): string => `ep${String(i).padStart(2, '0')}`;
/** Endpoints up from the start, and endpoints whose manager starts while the browser watches. */
const FIRST = Array.from({ length: 8 }, (_v, i) => name(i + 1));
const LATER = Array.from({ length: 4 }, (_v, i) => name(i + 9));
const FAIL = ['ep03', 'ep06', 'ep10'];
/** Generous: the machine is shared and slow at times; nothing here measures time. */
const WAIT = 60_000;

/**
 * The dashboard in headless Chromium against the real API (api.auth: tokens) and real endpoint managers:
 * the token asked for once, the task list kept live, a task's grid going from SENT to DONE as its events
 * arrive, a failed endpoint's result, the failed endpoints retried with the button, a cancel, a token
 * without the operate scope, the endpoints' heartbeats. A marker set on the page's window must survive
 * every step: the page is never reloaded.
 */
describe('the dashboard in a real browser (Chromium)', function () {
  const h = new Harness({
    waitTimeout: 120,
    env: {
      TASKER_API__AUTH: 'tokens', TASKER_TASK_TYPES: `[${TYPES.join(', ')}]`, TASKER_MANAGER__HANDLERS_DIR: 'test/handlers',
      // A local receiver for the webhooks page; retries every 0.2 s or so.
      TASKER_API__WEBHOOKS__ALLOW_HTTP: 'true', TASKER_API__WEBHOOKS__ALLOW_PRIVATE: 'true', TASKER_API__WEBHOOKS__INTERVAL: '0.1',
      TASKER_API__WEBHOOKS__RETRY_BASE: '0.2', TASKER_API__WEBHOOKS__RETRY_MAX: '1',
    },
  });
  const tokens: Record<string, string> = {};
  let browser: Browser | null = null;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  const createToken = (name: string, scopes: string[]): Promise<string> => h.createToken(name, scopes);

  async function call(method: string, pathname: string, body?: unknown): Promise<any> {
    const res = await fetch(`${h.baseUrl}/${pathname}`, {
      method, headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    assert.ok(res.ok, `${method} ${pathname}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  async function waitForTask(identifier: string, status: string): Promise<any> {
    const deadline = Date.now() + WAIT;
    for (;;) {
      const { task } = await call('GET', `deploy/${identifier}`);
      if (task.status === status) return task;
      if (Date.now() > deadline) assert.fail(`deploy/${identifier} is ${task.status}, not ${status}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const cell = (endpoint: string, state: string) => page.waitForSelector(`.cell[data-endpoint="${endpoint}"][data-state="${state}"]`, { timeout: WAIT });
  const status = (value: string) => page.waitForSelector(`.taskhead [data-status="${value}"]`, { timeout: WAIT });
  const marker = () => page.evaluate(() => window.__sameDocument);
  /** The states each endpoint's cell went through, as the page showed them. */
  const transitions = (endpoint: string) => page.evaluate((ep) => window.__stateLog.filter((t: any) => t.endpoint === ep).map((t: any) => `${t.from}>${t.to}`), endpoint);

  /** Under test-output/; with TASKER_UPDATE_SCREENSHOTS=1 also the README's copies in docs/screenshots/. */
  async function screenshot(file: string): Promise<void> {
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, file), fullPage: true });
    if (process.env.TASKER_UPDATE_SCREENSHOTS === '1') {
      mkdirSync(SCREENSHOTS, { recursive: true });
      copyFileSync(path.join(OUTPUT, file), path.join(SCREENSHOTS, file));
    }
  }

  before(async function () {
    this.timeout(900_000);
    await h.setup(this);
    await ensureDebianPackage('chromium', [CHROMIUM, ['--version']]);
    await h.startApi();
    await h.startManager(FIRST, TYPES, { TASKER_LABELS: 'role=web,region=eu' });
    tokens.admin = await createToken('ui-admin', ['admin']);
    tokens.reader = await createToken('ui-reader', ['read']);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT });
    context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async function () {
    await browser?.close();
    await h.teardown();
  });

  it('asks for the token once, then lists the tasks of a type with their counts, live', async function () {
    // Tasks that ended, for the list to show: all succeeded, one failed, and one cancelled before its
    // endpoints (not started yet) saw it.
    await call('POST', 'deploy', { identifier: 'hotfix-7', payload: { sleep: 0 }, endpoints: FIRST });
    await call('POST', 'deploy', { identifier: 'canary-3', payload: { sleep: 0, fail: ['ep02'] }, endpoints: ['ep01', 'ep02'] });
    await call('POST', 'deploy', { identifier: 'rollback-2', payload: { sleep: 0 }, endpoints: LATER });
    await call('POST', 'deploy/rollback-2/cancel');
    await waitForTask('hotfix-7', 'DONE');
    await waitForTask('canary-3', 'DONE');

    await page.goto(`${h.baseUrl}/ui/`);
    // The API answered 401: the page asks for a token.
    const dialog = await page.waitForSelector('dialog#signin[open]', { timeout: WAIT });
    assert.match(await dialog.innerText(), /needs a bearer token/);
    await page.fill('#token', tokens.admin);
    await page.click('dialog#signin button[type=submit]');
    await page.waitForSelector('dialog#signin[open]', { state: 'detached', timeout: WAIT });
    assert.equal(await page.evaluate(() => localStorage.getItem('tasker.token')), tokens.admin, 'kept for the next visit');
    assert.equal(await page.isVisible('#signout'), true);

    await page.evaluate(() => {
      const w = window as any;
      w.__sameDocument = true;
      w.__stateLog = [];
      new MutationObserver((records: any[]) => {
        for (const r of records) {
          const el = r.target;
          if (el.classList.contains('cell')) w.__stateLog.push({ endpoint: el.dataset.endpoint, from: r.oldValue, to: el.dataset.state });
        }
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-state'], attributeOldValue: true });
    });
    await page.click('#nav a[href="#/tasks/deploy"]');
    await page.waitForSelector('tr[data-identifier="hotfix-7"][data-status="DONE"]', { timeout: WAIT });
    await page.waitForSelector('tr[data-identifier="rollback-2"][data-status="CANCELLED"]', { timeout: WAIT });
    assert.match(await page.innerText('tr[data-identifier="canary-3"]'), /2\/2 finished · 1 failed/);
    assert.match(await page.innerText('.summary'), /All\s*3[\s\S]*DONE\s*2[\s\S]*CANCELLED\s*1/);

    // Created while the list is open: it appears, and its counts move, without a reload.
    await call('POST', 'deploy', { identifier: 'rollout-12', payload: { sleep: 2, fail: FAIL, note: 'line one\nline two' }, endpoints: [...FIRST, ...LATER] });
    await page.waitForSelector('tr[data-identifier="rollout-12"][data-status="SENT"]', { timeout: WAIT });
    await page.waitForFunction(() => /8\/12 finished · 2 failed/.test(document.querySelector('tr[data-identifier="rollout-12"]')?.textContent ?? ''), null, { timeout: WAIT });
    assert.match(await page.innerText('.summary'), /All\s*4[\s\S]*SENT\s*1/);
    assert.equal(await page.locator('table.tasks tbody tr').first().getAttribute('data-identifier'), 'rollout-12', 'newest first');

    // A filter is part of the address, and asks the API.
    await page.selectOption('.filters select[name=status]', 'DONE');
    await page.click('.filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('table.tasks tbody tr').length === 2 && !document.querySelector('tr[data-identifier="rollout-12"]'), null, { timeout: WAIT });
    assert.match(page.url(), /#\/tasks\/deploy\?status=DONE$/);
    await page.click('.filters a.clear');
    await page.waitForSelector('tr[data-identifier="rollout-12"]', { timeout: WAIT });
    await page.waitForFunction(() => /8\/12 finished · 2 failed/.test(document.querySelector('tr[data-identifier="rollout-12"]')?.textContent ?? ''), null, { timeout: WAIT });
    await page.waitForSelector('#live[data-live="live"]', { timeout: WAIT });
    await screenshot('dashboard-tasks.png');
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('shows a task\'s endpoints going from SENT to DONE as its events arrive, and a failed one\'s result', async function () {
    await page.click('tr[data-identifier="rollout-12"] a');
    await page.waitForSelector('.grid .cell', { timeout: WAIT });
    assert.equal(await page.locator('.grid .cell').count(), 12);
    // The endpoints of the manager not started yet have not been heard from: the task stays SENT.
    await status('SENT');
    for (const ep of LATER) await cell(ep, 'pending');
    for (const ep of FIRST) await cell(ep, FAIL.includes(ep) ? 'failed' : 'succeeded');
    assert.match(await page.innerText('.legend'), /pending\s*4[\s\S]*succeeded\s*6[\s\S]*failed\s*2/);

    await page.click('.cell[data-endpoint="ep03"]');
    await page.waitForFunction(() => /failed as asked/.test(document.querySelector('.details')?.textContent ?? ''), null, { timeout: WAIT });
    const details = await page.innerText('.details');
    assert.match(details, /ep03/);
    assert.match(details, /errnr\s+7/);
    assert.match(details, /errmsg\s+failed as asked/);
    assert.match(details, /attempts\s+1/);
    // A string's newlines read as lines, not as \n.
    const payloadText = await page.locator('details.payload pre').evaluate((el) => el.textContent);
    assert.match(String(payloadText), /"note": "line one\nline two"/);
    await screenshot('dashboard-task.png');

    await h.startManager(LATER, TYPES, { TASKER_LABELS: 'role=db,region=us' });
    await status('DONE');
    for (const ep of LATER) await cell(ep, FAIL.includes(ep) ? 'failed' : 'succeeded');
    // Each of them was shown pending, then running (its receipt), then finished.
    for (const ep of LATER) {
      assert.deepEqual(await transitions(ep), ['pending>running', `running>${FAIL.includes(ep) ? 'failed' : 'succeeded'}`], ep);
    }
    assert.match(await page.innerText('.legend'), /succeeded\s*9[\s\S]*failed\s*3/);
    assert.match(await page.innerText('.history'), /done\s+9 succeeded, 3 failed/);
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('retries the failed endpoints with the button, and shows them run again and succeed', async function () {
    const retry = page.locator('.actions button', { hasText: 'Retry failed (3)' });
    await retry.waitFor({ timeout: WAIT });
    await page.waitForFunction(() => !(document.querySelector('.actions button')).disabled, null, { timeout: WAIT });
    await retry.click();
    await page.waitForSelector('.message[data-kind="ok"]', { timeout: WAIT });
    assert.match(await page.innerText('.message'), /Sent again to 3 endpoints: ep03, ep06, ep10/);
    for (const ep of FAIL) await cell(ep, 'succeeded');
    await status('DONE');
    for (const ep of FAIL) {
      const seen = await transitions(ep);
      assert.deepEqual(seen.slice(seen.indexOf('failed>pending')), ['failed>pending', 'pending>running', 'running>succeeded'], `${ep}: ${seen.join(', ')}`);
    }
    assert.match(await page.innerText('.legend'), /succeeded\s*12[\s\S]*failed\s*0/);
    assert.match(await page.innerText('.history'), /retried\s+ep03, ep06, ep10 \(round 1\)\s+by ui-admin/);
    assert.doesNotMatch(await page.innerText('.history'), /\?/, 'every event says what it knows');
    const stored = await call('GET', 'deploy/rollout-12');
    assert.deepEqual(stored.taskResponseList.filter((r: any) => r.round === 1).map((r: any) => r.endpoint), FAIL, 'the API did what the page shows');
    // Nothing left to retry; the details of the selected endpoint follow its new round.
    assert.equal(await retry.count(), 0);
    await page.waitForFunction(() => {
      const b = document.querySelector('.actions button');
      return b.textContent === 'Retry failed (0)' && b.disabled;
    }, null, { timeout: WAIT });
    await page.waitForFunction(() => /round\s*1/.test(document.querySelector('.details')?.textContent ?? ''), null, { timeout: WAIT });
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('cancels a task with the button (a second click confirms)', async function () {
    await call('POST', 'deploy', { identifier: 'hold-1', payload: { sleep: 0 }, endpoints: ['ep01', 'ep99'] });
    await page.evaluate(() => { location.hash = '#/task/deploy/hold-1'; });
    await cell('ep99', 'pending');
    await cell('ep01', 'succeeded');
    const cancel = page.locator('.actions button.danger');
    await page.waitForFunction(() => !(document.querySelector('.actions button.danger')).disabled, null, { timeout: WAIT });
    await cancel.click();
    assert.equal(await cancel.innerText(), 'Click again to cancel');
    assert.equal((await call('GET', 'deploy/hold-1')).task.status, 'SENT', 'one click cancels nothing');
    await cancel.click();
    await status('CANCELLED');
    await cell('ep99', 'cancelled');
    assert.equal(await cancel.isDisabled(), true);
    assert.equal((await call('GET', 'deploy/hold-1')).task.status, 'CANCELLED');
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('shows the endpoints with the age of their last heartbeat', async function () {
    await page.click('#nav a[href="#/endpoints"]');
    await page.waitForFunction(() => document.querySelectorAll('table.endpoints tbody tr[data-alive="true"]').length === 12, null, { timeout: WAIT });
    assert.match(await page.innerText('tr[data-name="ep09"]'), /ep09\s+alive\s+\d+ s ago\s+deploy, worker\s+region=us, role=db\s+[\w.-]+ · \w+\/\w+ · tasker \d/);
    assert.match(await page.innerText('.summary-line'), /12 endpoints: 12 alive, 0 silent/);
    await screenshot('dashboard-endpoints.png');
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('previews how many endpoints a selector matches as it is typed, and filters the list by it', async function () {
    await page.fill('input[name="selector"]', 'role=db,region in (us)');
    await page.waitForFunction(() => document.querySelector('.preview')?.textContent === 'matches 4 endpoints', null, { timeout: WAIT });
    // Typing alone narrows nothing: the list waits for the filter to be applied.
    assert.equal(await page.locator('table.endpoints tbody tr').count(), 12);
    await page.fill('input[name="selector"]', 'role in (db');
    await page.waitForFunction(() => /unexpected end of selector/.test(document.querySelector('.preview.error')?.textContent ?? ''), null, { timeout: WAIT });
    await page.fill('input[name="selector"]', 'role=db');
    await page.click('form.filters button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('table.endpoints tbody tr').length === 4, null, { timeout: WAIT });
    assert.match(await page.innerText('.summary-line'), /4 endpoints matching role=db \(4 in all\): 4 alive, 0 silent/);
    assert.deepEqual(await page.locator('table.endpoints tbody tr').evaluateAll((rows: any[]) => rows.map((r) => r.dataset.name)), LATER);
    await page.fill('input[name="selector"]', '');
    await page.click('form.filters button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('table.endpoints tbody tr').length === 12, null, { timeout: WAIT });
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('lists the schedules with their next firing, paused flag and a link to the last task', async function () {
    await call('POST', 'schedules', { name: 'pulse', task_type: 'deploy', every: '2s', payload: { sleep: 0 }, endpoints: ['ep01'] });
    const nightly = await call('POST', 'schedules', { name: 'nightly', task_type: 'deploy', cron: '30 2 * * *', timezone: 'Europe/Berlin' });
    await call('POST', 'schedules', { name: 'quiet', task_type: 'deploy', every: '1h', paused: true });
    await page.click('#nav a[href="#/schedules"]');
    const row = await page.waitForSelector('tr[data-name="nightly"] td.next[data-next]', { timeout: WAIT });
    assert.equal(await row.getAttribute('data-next'), nightly.next_fire_time);
    assert.match(await page.innerText('tr[data-name="nightly"]'), /nightly\s+deploy\s+30 2 \* \* \* \(Europe\/Berlin\)\s+\d{4}-\d\d-\d\d \d\d:30:00 \(in \d+ (s|min|h)\)\s+active/);
    assert.match(await page.innerText('tr[data-name="quiet"]'), /quiet\s+deploy\s+every 1h\s+paused\s+paused/);
    // Refreshed in place: the last task of the 2 s schedule appears, linking to its page.
    const link = await page.waitForSelector('tr[data-name="pulse"] a[href^="#/task/deploy/pulse-"]', { timeout: WAIT });
    const identifier = await link.innerText();
    assert.match(identifier, /^pulse-\d{8}T\d{6}Z$/);
    await call('POST', 'schedules/pulse/pause');
    await screenshot('dashboard-schedules.png');
    await link.click();
    await page.waitForSelector(`.cell[data-endpoint="ep01"]`, { timeout: WAIT });
    assert.equal(decodeURIComponent(await page.evaluate(() => location.hash)), `#/task/deploy/${identifier}`);
    assert.equal(await marker(), true, 'the page was not reloaded');
  });

  it('lists the webhook subscriptions with their last delivery, and a subscription\'s delivery log with redeliver and test', async function () {
    // A real receiver: /ok answers 200, /fail 500; it records each message's webhook-id.
    const got: { path: string; id: string }[] = [];
    const receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        got.push({ path: req.url ?? '', id: String(req.headers['webhook-id']) });
        res.writeHead(req.url === '/ok' ? 200 : 500).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    try {
      const ok = await call('POST', 'webhooks', { url: `${base}/ok`, events: ['task.created', 'task.done'], types: ['deploy'], description: 'ops' });
      const failing = await call('POST', 'webhooks', { url: `${base}/fail`, events: ['task.done'], selector: 'role=web' });
      await call('POST', 'deploy', { identifier: 'hooked-1', payload: { sleep: 0 }, endpoints: ['ep01'] });
      await waitForTask('hooked-1', 'DONE');
      await page.click('#nav a[href="#/webhooks"]');
      await page.waitForSelector(`tr[data-id="${ok.id}"] td.last[data-status="delivered"]`, { timeout: WAIT });
      assert.match(await page.innerText(`tr[data-id="${ok.id}"]`), new RegExp(`${ok.id}\\s+${base}/ok\\s+task\\.created, task\\.done\\s+types: deploy\\s+active\\s+delivered \\(200\\)`));
      // Its 500s: pending, retried, the last answer shown.
      await page.waitForFunction((id) => /pending after ([2-9]|\d{2,}) attempts \(500\)/.test(document.querySelector(`tr[data-id="${id}"] td.last`)?.innerText ?? ''), failing.id, { timeout: WAIT });
      assert.match(await page.innerText(`tr[data-id="${failing.id}"]`), /selector: role=web\s+active/);
      await call('PATCH', `webhooks/${failing.id}`, { enabled: false });
      await page.waitForSelector(`tr[data-id="${failing.id}"][data-enabled="false"]`, { timeout: WAIT });
      assert.match(await page.innerText(`tr[data-id="${failing.id}"]`), /disabled\s+disabled by PATCH/);
      assert.match(await page.innerText('.summary-line'), /2 subscriptions: 1 active, 1 disabled/);
      await screenshot('dashboard-webhooks.png');

      // The log of the one that works: both deliveries, newest first, linking to the task.
      await page.click(`tr[data-id="${ok.id}"] a[href="#/webhooks/${ok.id}"]`);
      await page.waitForSelector('table.deliveries tr[data-status="delivered"] + tr[data-status="delivered"]', { timeout: WAIT });
      const rows = await page.locator('table.deliveries tbody tr').allInnerTexts();
      assert.equal(rows.length, 2);
      assert.match(rows[0], /task\.done\s+deploy\/hooked-1\s+delivered\s+200\s+\d+ ms\s+1\s+—/);
      assert.match(rows[1], /task\.created\s+deploy\/hooked-1\s+delivered\s+200/);
      // Test: a signed message now, its answer shown.
      await page.click('button:has-text("Send test")');
      await page.waitForSelector('.test-result[data-ok="true"]', { timeout: WAIT });
      assert.match(await page.innerText('.test-result'), /^Test msg_test_[0-9a-f]+: answered 200 in \d+ ms\.$/);
      assert.ok(got.some((g) => g.path === '/ok' && g.id.startsWith('msg_test_')));
      // Redeliver the newest: sent again under the same webhook-id.
      const newest = await page.getAttribute('table.deliveries tbody tr:first-child', 'data-id');
      const before = got.filter((g) => g.id === `msg_${newest}`).length;
      await page.click('table.deliveries tbody tr:first-child button:has-text("Redeliver")');
      const deadline = Date.now() + WAIT;
      while (got.filter((g) => g.id === `msg_${newest}`).length === before) {
        if (Date.now() > deadline) assert.fail('the redelivery did not arrive');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await page.waitForFunction(() => /delivered\s+200\s+\d+ ms\s+2/.test(document.querySelector('table.deliveries tbody tr')?.innerText ?? ''), undefined, { timeout: WAIT });
      assert.equal(await marker(), true, 'the page was not reloaded');
      for (const w of [ok, failing]) await call('DELETE', `webhooks/${w.id}`);
    } finally {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });

  it('gives a token without the operate scope the pages but not retry and cancel', async function () {
    const reader = await browser!.newContext({ viewport: { width: 1280, height: 820 } });
    try {
      const p = await reader.newPage();
      await p.goto(`${h.baseUrl}/ui/#/task/deploy/rollout-12`);
      await p.waitForSelector('dialog#signin[open]', { timeout: WAIT });
      await p.fill('#token', tokens.reader);
      await p.click('dialog#signin button[type=submit]');
      await p.waitForSelector('.cell[data-endpoint="ep12"][data-state="succeeded"]', { timeout: WAIT });
      await p.waitForSelector('.note:not([hidden])', { timeout: WAIT });
      assert.match(await p.innerText('.note'), /operate scope/);
      for (const b of await p.locator('.actions button').all()) assert.equal(await b.isDisabled(), true, await b.innerText());
      // A token the API does not know is asked for again.
      await p.evaluate(() => { localStorage.setItem('tasker.token', 'tkr_0000000000000000_nope'); location.hash = '#/endpoints'; });
      await p.waitForSelector('dialog#signin[open]', { timeout: WAIT });
      assert.match(await p.innerText('#signin-error'), /did not accept the token/);
    } finally {
      await reader.close();
    }
    assert.deepEqual(pageErrors, [], 'no script errors on the page');
  });
});
