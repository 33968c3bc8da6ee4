import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { httpReference } from '../api/openapi-markdown';

/**
 * `npm run docs:http [-- --url http://127.0.0.1:8888] [--check]`: writes `docs/http-api.md` from the OpenAPI
 * document of a running API (`npm start` in another terminal: the standalone mode's task types). With
 * `--check`, changes nothing and exits 1 when the file differs.
 */
async function run(): Promise<number> {
  const { values } = parseArgs({ options: { url: { type: 'string', default: 'http://127.0.0.1:8888' }, check: { type: 'boolean', default: false } } });
  const res = await fetch(`${values.url}/openapi.json`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${values.url}/openapi.json answered ${res.status}`);
  const text = httpReference(await res.json() as Record<string, unknown>);
  const file = path.resolve(__dirname, '..', '..', 'docs', 'http-api.md');
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // not written yet
  }
  if (values.check) {
    process.stdout.write(current === text ? 'docs/http-api.md is current\n' : 'docs/http-api.md differs from the API\'s routes; run npm run docs:http\n');
    return current === text ? 0 : 1;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  if (current !== text) writeFileSync(file, text);
  process.stdout.write(`docs/http-api.md ${current === text ? 'unchanged' : 'written'}\n`);
  return 0;
}

run().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`docs:http: ${(err as Error).message}\n`);
  process.exit(2);
});
