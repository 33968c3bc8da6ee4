import http from 'node:http';

export interface PostResult {
  sentAt: number;
  doneAt: number;
  status: number;
}

/** Keep-alive HTTP POSTs of JSON bodies, `concurrency` at a time, one per request. */
export async function postAll(
  port: number, path: (i: number) => string, body: (i: number) => string, count: number, concurrency: number,
): Promise<PostResult[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const results: PostResult[] = new Array(count);
  let next = 0;
  const one = (i: number): Promise<void> => new Promise((resolve, reject) => {
    const data = body(i);
    const sentAt = performance.timeOrigin + performance.now();
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: path(i), agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      res.resume();
      res.on('end', () => {
        results[i] = { sentAt, doneAt: performance.timeOrigin + performance.now(), status: res.statusCode ?? 0 };
        resolve();
      });
    });
    req.on('error', reject);
    req.end(data);
  });
  try {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }));
  } finally {
    agent.destroy();
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
