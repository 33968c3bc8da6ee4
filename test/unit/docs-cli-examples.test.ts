import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { run } from '../../cli/program';
import { readDoc, ROOT } from '../support/docs';

interface Example {
  where: string;
  argv: string[];
}

/** Splits a shell command line into words (quotes and backslashes as a POSIX shell reads them), up to `;`, `|`, `>`, `&&`. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\'') {
      const end = line.indexOf('\'', i + 1);
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      const end = line.indexOf('"', i + 1);
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '\\' && i + 1 < line.length) {
      cur = (cur ?? '') + line[++i];
    } else if (c === ' ') {
      if (cur !== null) out.push(cur);
      cur = null;
    } else if (';|>&'.includes(c)) {
      break;
    } else {
      cur = (cur ?? '') + c;
    }
  }
  if (cur !== null) out.push(cur);
  return out;
}

/** A synopsis rather than an example: it names its arguments (TYPE, <id>, [options], a|b). */
const isSynopsis = (argv: string[]): boolean => argv.some((w) => /^[A-Z][A-Z_]+$|[<[\]]|\.\.\.|^[a-z-]+\|[a-z|-]+$/.test(w) || /\|/.test(w));

/** Every `tasker` command the docs show: `$ npx tasker ...` lines and inline `npx tasker ...` code. */
function examples(): Example[] {
  const files = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: Example[] = [];
  for (const file of files) {
    readDoc(file).split('\n').forEach((line, i) => {
      const found = [
        ...[...line.matchAll(/^\$ (?:[A-Z_]+=\S* )*(?:npx )?tasker (.*)$/g)].map((m) => m[1]),
        ...[...line.matchAll(/`npx tasker ([^`]+)`/g)].map((m) => m[1]),
      ];
      for (const rest of found) {
        const argv = words(rest);
        if (argv.length > 0 && !isSynopsis(argv)) out.push({ where: `${file}:${i + 1}: tasker ${rest}`, argv });
      }
    });
  }
  return out;
}

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({ write(chunk: Buffer, _e, done) { text += chunk.toString(); done(); } });
  return { stream, text: () => text };
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Every tasker command in the docs is one the CLI accepts: run against an API that is not there, it gets as
 * far as trying to reach it (or, for help and dry output, ends well), never a usage error.
 */
describe('the docs\' tasker commands', function () {
  const all = examples();

  it('are found (the README\'s and the CLI page\'s at least)', function () {
    assert.ok(all.filter((e) => e.where.startsWith('README.md')).length >= 3, 'README examples');
    assert.ok(all.filter((e) => e.where.startsWith('docs/cli.md')).length >= 10, 'docs/cli.md examples');
  });

  it('are each accepted by the CLI as written', async function () {
    this.timeout(60_000);
    const url = `http://127.0.0.1:${await closedPort()}`;
    const refused: string[] = [];
    for (const e of all) {
      const out = sink();
      const err = sink();
      const argv = [...e.argv.filter((w, i, a) => w !== '--url' && a[i - 1] !== '--url'), '--url', url];
      const code = await run(argv, { stdout: out.stream, stderr: err.stream, color: false, readStdin: () => '{}' });
      const said = err.text();
      if (code !== 0 && !said.includes('cannot reach the API')) refused.push(`${e.where}\n    -> exit ${code}: ${said.trim().split('\n')[0]}`);
    }
    assert.deepEqual(refused, []);
  });

  it('tell a usage error from an unreachable API (the check itself)', async function () {
    const err = sink();
    const code = await run(['send', 'worker', '--no-such-option'], { stdout: sink().stream, stderr: err.stream, color: false, readStdin: () => '' });
    assert.notEqual(code, 0);
    assert.ok(!err.text().includes('cannot reach the API'), err.text());
  });
});
