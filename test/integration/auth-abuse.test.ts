import assert from 'node:assert/strict';
import http from 'node:http';
import { Harness } from '../support/harness';

/**
 * Failed token checks through the real API and database: they write nothing, an unknown key is read from
 * the database once per api.auth_cache, and an address or key that fails too often is answered 429 with
 * Retry-After while other addresses and keys are served. Clients are told apart by their source address
 * on the loopback network (127.0.0.x).
 */
describe('auth: failed attempts (api.auth: tokens)', function () {
  const h = new Harness({
    env: {
      TASKER_API__AUTH: 'tokens', TASKER_API__AUTH_CACHE: '600', TASKER_API__AUTH_KEY_FAILURES: '5',
      TASKER_API__AUTH_ADDRESS_FAILURES: '12', TASKER_API__AUTH_FAILURE_WINDOW: '600',
    },
  });
  const tokens: Record<string, string> = {};

  const createToken = (name: string, scopes: string[]): Promise<string> => h.createToken(name, scopes);

  /** A GET from the given source address. */
  function get(path: string, token: string | null, from = '127.0.0.1'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    const url = new URL(`${h.baseUrl}${path}`);
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: url.hostname, port: url.port, path: url.pathname + url.search, localAddress: from,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  async function metric(line: RegExp): Promise<number> {
    const res = await get('/metrics', tokens.admin, '127.0.0.9');
    assert.equal(res.status, 200, res.body);
    const m = res.body.split('\n').map((l) => line.exec(l)).find((x) => x);
    return m ? Number(m[1]) : 0;
  }
  const reads = (): Promise<number> => metric(/^tasker_auth_token_reads_total (\S+)$/);
  const failures = (reason: string): Promise<number> => metric(new RegExp(`^tasker_auth_failures_total\\{reason="${reason}"\\} (\\S+)$`));

  const wrongSecret = (token: string): string => `${token.slice(0, 21)}${token.at(21) === 'A' ? 'B' : 'A'}${token.slice(22)}`;
  const unknownKey = (n: number): string => `tkr_${n.toString(16).padStart(16, 'f')}_${'x'.repeat(43)}`;

  before(async function () {
    await h.setup(this);
    await h.startApi();
    tokens.admin = await createToken('admin', ['admin']);
    tokens.reader = await createToken('reader', ['read']);
  });

  after(async function () {
    await h.teardown();
  });

  it('writes nothing for a wrong secret: last_used_time stays as it was', async function () {
    const lastUsed = async (): Promise<unknown> => (await h.query("SELECT last_used_time FROM api_token WHERE name = 'reader'"))[0].last_used_time;
    assert.equal(await lastUsed(), null);
    const res = await get('/events', wrongSecret(tokens.reader), '127.0.0.2');
    assert.equal(res.status, 401, res.body);
    assert.equal(await lastUsed(), null);
    assert.equal((await get('/events', tokens.reader, '127.0.0.2')).status, 200);
    assert.notEqual(await lastUsed(), null, 'a request that proved the secret is recorded');
  });

  it('reads an unknown key from the database once, then answers it from the negative cache', async function () {
    const readsBefore = await reads();
    const unknownBefore = await failures('unknown_key');
    for (let i = 0; i < 4; i++) assert.equal((await get('/events', unknownKey(1), '127.0.0.3')).status, 401);
    assert.equal(await reads() - readsBefore, 1);
    assert.equal(await failures('unknown_key') - unknownBefore, 4);
  });

  it('answers 429 with Retry-After once a key failed api.auth_key_failures times; other keys from that address still work', async function () {
    assert.equal((await get('/events', unknownKey(1), '127.0.0.3')).status, 401, 'the fifth failure of the key');
    const limitedBefore = await failures('rate_limited');
    const res = await get('/events', unknownKey(1), '127.0.0.3');
    assert.equal(res.status, 429, res.body);
    assert.equal(JSON.parse(res.body).error.code, 'too_many_requests');
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 600, String(res.headers['retry-after']));
    assert.equal(await failures('rate_limited') - limitedBefore, 1);
    assert.equal((await get('/events', tokens.reader, '127.0.0.3')).status, 200);
  });

  it('answers 429 to an address that failed api.auth_address_failures times, even with a valid token; other addresses still work', async function () {
    for (let i = 0; i < 12; i++) assert.equal((await get('/events', unknownKey(100 + i), '127.0.0.4')).status, 401, `attempt ${i + 1}`);
    const blocked = await get('/events', tokens.reader, '127.0.0.4');
    assert.equal(blocked.status, 429, blocked.body);
    assert.ok(Number(blocked.headers['retry-after']) >= 1);
    assert.equal((await get('/events', tokens.reader, '127.0.0.5')).status, 200);
    assert.equal((await get('/events', tokens.reader, '127.0.0.1')).status, 200);
  });
});
