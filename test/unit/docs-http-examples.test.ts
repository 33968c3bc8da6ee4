import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { readDoc, ROOT } from '../support/docs';

interface Route {
  method: string;
  pattern: RegExp;
}

/** The operations of the HTTP reference (docs/http-api.md, written from the OpenAPI document). */
function routes(): Route[] {
  return [...readDoc('docs/http-api.md').matchAll(/^### `([A-Z]+) (\/[^`]*)`$/gm)].map((m) => ({
    method: m[1],
    pattern: new RegExp(`^${m[2].replace(/\{[a-z_]+\}/g, '[^/]+')}$`),
  }));
}

/** Paths served besides the API's operations: the dashboard and its files. */
const OUTSIDE_API = /^\/ui(\/.*)?$|^\/$/;

interface Example {
  where: string;
  method: string;
  path: string;
}

/** Each curl command of the docs (continued lines joined): its method and the path of its URL. */
function curlExamples(): Example[] {
  const files = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md') && f !== 'http-api.md').map((f) => `docs/${f}`)];
  const out: Example[] = [];
  for (const file of files) {
    const text = readDoc(file).replace(/\\\n/g, ' ');
    text.split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/\bcurl ([^`\n|]*)/g)) {
        const args = m[1];
        const url = /(?:https?:\/\/)?(?:localhost|127\.0\.0\.1|[a-z.-]+\.example\.com)(?::\d+)?(\/[^\s'"]*)?/.exec(args);
        if (!url) continue;
        const method = /-X\s*([A-Z]+)/.exec(args)?.[1] ?? (/(^|\s)-(d|-data)\b|\s-d@/.test(args) ? 'POST' : /(^|\s)-s?I\b/.test(args) ? 'HEAD' : 'GET');
        out.push({ where: `${file}:${i + 1}: curl ${args.slice(0, 100)}`, method, path: (url[1] ?? '/').split('?')[0] });
      }
    });
  }
  return out;
}

describe('the docs\' curl examples', function () {
  const known = routes();
  const all = curlExamples();

  it('are found, and so are the reference\'s operations', function () {
    assert.ok(known.length >= 30, `${known.length} operations in docs/http-api.md`);
    assert.ok(all.length >= 40, `${all.length} curl examples`);
  });

  it('each call an operation of the HTTP reference with its method', function () {
    const unknown = all.filter((e) => {
      if (OUTSIDE_API.test(e.path)) return false;
      const method = e.method === 'HEAD' ? 'GET' : e.method;
      return !known.some((r) => r.method === method && r.pattern.test(e.path));
    });
    assert.deepEqual(unknown.map((e) => `${e.where} -> ${e.method} ${e.path}`), []);
  });

  it('tell a path the reference does not have (the check itself)', function () {
    assert.ok(!known.some((r) => r.method === 'DELETE' && r.pattern.test('/worker/x')));
    assert.ok(known.some((r) => r.method === 'POST' && r.pattern.test('/worker/x/retry')));
  });
});
