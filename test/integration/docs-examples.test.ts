import assert from 'node:assert/strict';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../config/loader';
import { httpReference } from '../../api/openapi-markdown';
import { checkedExamples, DocsExample, outputDifference } from '../support/docs-examples';
import { freePort } from '../support/harness';

const run = promisify(execFile);
const ROOT = projectRoot();
/** A command whose output is not yet what the docs show (a task still running) is run again until then. */
const SETTLE_MS = 30_000;

function markdownFiles(): string[] {
  const docs = path.join(ROOT, 'docs');
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.md') ? [path.join(dir, e.name)] : []));
  return ['README.md', ...existsSync(docs) ? walk(docs).map((f) => path.relative(ROOT, f)) : []];
}

const examples = new Map<string, DocsExample[]>(markdownFiles()
  .map((f) => [f, checkedExamples(readFileSync(path.join(ROOT, f), 'utf8'), f)] as [string, DocsExample[]])
  .filter(([, ex]) => ex.length > 0));

/** `npm start` as a newcomer runs it: the standalone mode's shipped configuration, only its port and SQLite file changed. */
async function startStandalone(port: number, dir: string): Promise<ChildProcess> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TASKER_')));
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'start.js')], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...env, TASKER_API_PORT: String(port), TASKER_MANAGER__DB__URI: `sqlite:${path.join(dir, 'tasker.sqlite')}`, TASKER_LOG_LEVEL: 'warn' },
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not listen within 30 s:\n${out}`)), 30_000);
    const look = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes(`listening on http://127.0.0.1:${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`npm start exited (${code}):\n${out}`)); });
  });
  child.removeAllListeners('exit');
  return child;
}

/**
 * The command as a user's shell runs it at the project's root, pointed at this run's port; stdout and stderr
 * as a terminal shows them: curl shows no progress meter there (here a `.curlrc` in `curlHome` says `silent`).
 */
async function shell(command: string, port: number, curlHome: string): Promise<string> {
  const pointed = command.replace(/(localhost|127\.0\.0\.1):8888/g, `127.0.0.1:${port}`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TASKER_')));
  try {
    const { stdout } = await run('/bin/bash', ['-c', `exec 2>&1\n${pointed}`], {
      cwd: ROOT, timeout: 60_000, env: { ...env, TASKER_URL: `http://127.0.0.1:${port}`, NO_COLOR: '1', CURL_HOME: curlHome },
    });
    return stdout;
  } catch (err) {
    return (err as { stdout?: string }).stdout ?? String(err);
  }
}

describe('docs: checked examples run against the real system', function () {
  it('has checked examples to run (the README\'s quick start at least)', function () {
    assert.ok((examples.get('README.md') ?? []).length >= 1, 'no <!-- checked --> block in README.md');
  });

  for (const [file, list] of examples) {
    describe(file, function () {
      let dir = '';
      let port = 0;
      let system: ChildProcess | null = null;

      before(async function () {
        dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-docs-'));
        port = await freePort();
        writeFileSync(path.join(dir, '.curlrc'), 'silent\nshow-error\n');
        system = await startStandalone(port, dir);
      });

      after(async function () {
        if (system && system.exitCode === null) {
          const exited = new Promise((resolve) => system?.once('exit', resolve));
          system.kill('SIGTERM');
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
      });

      for (const ex of list) {
        for (const c of ex.commands) {
          it(`${file}:${c.line} $ ${c.command.split('\n')[0].slice(0, 80)}`, async function () {
            let difference: string | null = 'not run';
            for (const deadline = Date.now() + SETTLE_MS; ;) {
              difference = outputDifference(c.expected, await shell(c.command, port, dir));
              if (difference === null || Date.now() > deadline) break;
              await new Promise((resolve) => setTimeout(resolve, 500));
            }
            assert.equal(difference, null, `${file}:${c.line}: the output is not what the docs show: ${difference}`);
          });
        }
      }
    });
  }
});

describe('docs: the HTTP reference is the API\'s own', function () {
  it('docs/http-api.md is what npm run docs:http writes from the running API\'s OpenAPI document', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-docs-'));
    const port = await freePort();
    const system = await startStandalone(port, dir);
    try {
      const doc = await (await fetch(`http://127.0.0.1:${port}/openapi.json`)).json() as Record<string, unknown>;
      const written = readFileSync(path.join(ROOT, 'docs', 'http-api.md'), 'utf8');
      assert.ok(written === httpReference(doc), 'docs/http-api.md differs from the routes: run npm start, then npm run docs:http');
    } finally {
      const exited = new Promise((resolve) => system.once('exit', resolve));
      system.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
