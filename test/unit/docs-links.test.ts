import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { readDoc, ROOT } from '../support/docs';

const README_MAX_LINES = 300;

/** GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, '').replace(/[^\w\- ]/g, '').replace(/ /g, '-');
}

/** The text outside fenced blocks and inline code, where links are links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

function anchorsOf(file: string): Set<string> {
  const text = readDoc(file).replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1])));
}

const docs = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'bench/RESULTS.md']
  .filter((f) => existsSync(path.join(ROOT, f)));

describe('the documentation', function () {
  it(`has a README of at most ${README_MAX_LINES} lines`, function () {
    const lines = readDoc('README.md').split('\n').length;
    assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines`);
  });

  it('links every page of docs/ from the README', function () {
    const readme = readDoc('README.md');
    const unlinked = docs.filter((f) => f.startsWith('docs/') && !readme.includes(`](${f})`) && !readme.includes(`](${f}#`));
    assert.deepEqual(unlinked, []);
  });

  it('has no link to a file or a heading that does not exist', function () {
    const broken: string[] = [];
    for (const file of docs) {
      for (const m of prose(readDoc(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
        const [where, anchor] = target.split('#');
        const resolved = where === '' ? file : path.relative(ROOT, path.resolve(ROOT, path.dirname(file), where));
        if (!existsSync(path.join(ROOT, resolved))) {
          broken.push(`${file}: ${target} (no file ${resolved})`);
        } else if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(resolved).has(anchor)) {
          broken.push(`${file}: ${target} (no heading #${anchor} in ${resolved})`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  it('finds a broken link when there is one (the check itself)', function () {
    assert.equal(anchorOf('`POST /<task_type>`'), 'post-task_type');
    assert.equal(anchorOf('Production setup: RabbitMQ, MySQL and pm2'), 'production-setup-rabbitmq-mysql-and-pm2');
    assert.ok(!anchorsOf('README.md').has('no-such-heading'));
    assert.ok(anchorsOf('README.md').has('adding-a-task-type'));
  });
});
