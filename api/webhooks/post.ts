import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { isPrivateAddress } from './address';

/** The most of a receiver's answer that is read: the rest is not waited for. */
export const MAX_ANSWER_BYTES = 64 * 1024;

export interface PostOptions {
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface PostResult {
  /** A 2xx came back within the timeout. */
  ok: boolean;
  status: number | null;
  durationMs: number;
  /** Why it is not ok (null when it is). */
  error: string | null;
}

/** Refused before any connection: the address a name resolved to (or an address given) is not allowed. */
class RefusedAddressError extends Error {}

/**
 * The name resolution of a delivery: the address is checked after the lookup and the connection goes to
 * that very address, so a name that resolves to a public address once and a private one the next time
 * (DNS rebinding) cannot reach inside.
 */
function checkedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      const refused = allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (refused) return callback(new RefusedAddressError(`${hostname} resolves to ${refused.address}, a private, loopback or link-local address`), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      return callback(null, list[0].address, list[0].family);
    });
  };
}

/**
 * POSTs `body` to `url` once: no redirect is followed (a 3xx is a failure), the answer's body is read up
 * to MAX_ANSWER_BYTES, and the whole exchange is bounded by `timeoutMs`.
 */
export function postOnce(url: URL, headers: Record<string, string>, body: string, o: PostOptions): Promise<PostResult> {
  const started = performance.now();
  const done = (status: number | null, error: string | null): PostResult => ({
    ok: error === null && status !== null && status >= 200 && status < 300, status, durationMs: performance.now() - started, error,
  });
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 && !o.allowPrivate && isPrivateAddress(host)) {
    return Promise.resolve(done(null, `${host} is a private, loopback or link-local address`));
  }
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: PostResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const lib = url.protocol === 'https:' ? https : http;
    const req = lib.request(url, {
      method: 'POST', agent: false, lookup: checkedLookup(o.allowPrivate),
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'tasker-webhooks' },
    }, (res) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      let text = '';
      res.on('data', (chunk: Buffer) => {
        if (read < 512) text += chunk.subarray(0, 512 - read).toString('utf8');
        read += chunk.length;
        // Past the bound the answer is not waited for: what came decides.
        if (read >= MAX_ANSWER_BYTES) {
          res.destroy();
          finish(done(status, status >= 200 && status < 300 ? null : describe(status, res.headers.location, text)));
        }
      });
      res.on('end', () => finish(done(status, status >= 200 && status < 300 ? null : describe(status, res.headers.location, text))));
      res.on('error', (err) => finish(done(status, `the answer broke off: ${err.message}`)));
    });
    const timer = setTimeout(() => {
      finish(done(null, `no answer within ${o.timeoutMs / 1000} s`));
      req.destroy();
    }, o.timeoutMs);
    req.on('error', (err) => finish(done(null, err instanceof RefusedAddressError ? err.message : `${(err as NodeJS.ErrnoException).code ?? 'error'}: ${err.message}`)));
    req.end(body);
  });
}

function describe(status: number, location: string | undefined, text: string): string {
  if (status >= 300 && status < 400) return `answered ${status}, a redirect (not followed)${location ? ` to ${location.slice(0, 200)}` : ''}`;
  const snippet = text.trim().slice(0, 200);
  return `answered ${status}${snippet ? `: ${snippet}` : ''}`;
}
