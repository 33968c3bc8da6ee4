import assert from 'node:assert/strict';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ensureDebianPackage } from '../support/debian';
import { Harness } from '../support/harness';

declare const document: any;

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const NODE = process.execPath;
/** A line on stdout every `gap` ms, every fifth followed by one on stderr. */
const LINES = `const [n, gap] = process.argv.slice(1).map(Number); let i = 0;
const t = setInterval(() => { i++; console.log('line ' + i); if (i % 5 === 0) console.error('err ' + i); if (i === n) clearInterval(t); }, gap);`;
const num = { type: 'integer', minimum: 0, maximum: 100000 };
const TYPES = [{ name: 'out-lines', command: [NODE, '-e', LINES, '{count}', '{gap}'], payload_schema: { type: 'object', required: ['count', 'gap'], properties: { count: num, gap: num } } }];
const WAIT = 60_000;

/** The dashboard's endpoint pane shows a running command's output as it is written, in headless Chromium. */
describe('the dashboard\'s live output (Chromium)', function () {
  const h = new Harness({ env: { TASKER_TASK_TYPES: JSON.stringify(TYPES), TASKER_MANAGER__ENDPOINTS: '[]' } });
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];

  before(async function () {
    this.timeout(900_000);
    await h.setup(this);
    await ensureDebianPackage('chromium', [CHROMIUM, ['--version']]);
    await h.startApi();
    await h.startManager('web1', ['out-lines']);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 820 } })).newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async function () {
    await browser?.close();
    await h.teardown();
  });

  it('shows the selected endpoint\'s lines while its command runs, stderr marked, until it finished', async function () {
    const res = await h.post('out-lines', { identifier: 'live-1', endpoints: ['web1'], payload: { count: 25, gap: 120 } });
    assert.equal(res.status, 201);
    await page.goto(`${h.baseUrl}/ui/#/task/out-lines/live-1`);
    await page.click('.cell[data-endpoint="web1"]', { timeout: WAIT });
    await page.waitForFunction(() => (document.querySelectorAll('pre.output[data-endpoint="web1"] .line').length >= 3), null, { timeout: WAIT });
    const task = await h.get('out-lines/live-1');
    assert.notEqual(task.json.taskResponseList[0].state, 'succeeded', 'the lines showed only after the command ended');
    assert.equal(await page.getAttribute('pre.output', 'data-done'), 'false');
    await page.waitForSelector('pre.output[data-done="true"]', { timeout: WAIT });
    const lines = await page.$$eval('pre.output .line', (els: any[]) => els.map((e) => [e.dataset.stream, e.textContent]));
    assert.deepEqual(lines.filter(([s]) => s === 'stdout').map(([, t]) => t), Array.from({ length: 25 }, (_v, i) => `line ${i + 1}\n`));
    assert.deepEqual(lines.filter(([s]) => s === 'stderr').map(([, t]) => t), ['err 5\n', 'err 10\n', 'err 15\n', 'err 20\n', 'err 25\n']);
    assert.deepEqual(pageErrors, []);
  });
});
