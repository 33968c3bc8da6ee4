import http from 'node:http';
import { Pool } from 'undici';

export interface PostResult {
  sentAt: number;
  doneAt: number;
  status: number;
}

/**
 * Keep-alive HTTP POSTs of JSON bodies, `concurrency` at a time, one per request. The client is undici's
 * connection pool: it shares the 2 cores with the system under test, and costs about half the CPU of
 * `http.request` for the same requests.
 */
export async function postAll(
  port: number, path: (i: number) => string, body: (i: number) => string, count: number, concurrency: number,
): Promise<PostResult[]> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency, pipelining: 1 });
  const results: PostResult[] = new Array(count);
  let next = 0;
  const one = async (i: number): Promise<void> => {
    const data = body(i);
    const sentAt = performance.timeOrigin + performance.now();
    const res = await pool.request({ method: 'POST', path: path(i), body: data, headers: { 'content-type': 'application/json' } });
    await res.body.dump();
    results[i] = { sentAt, doneAt: performance.timeOrigin + performance.now(), status: res.statusCode };
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }));
  } finally {
    await pool.close();
  }
  return results;
}

export async function getJson(port: number, path: string, agent: http.Agent): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    }).on('error', reject);
  });
}
