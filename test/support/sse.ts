import http from 'node:http';

export interface SseEvent {
  id: number;
  event: string;
  data: any;
}

/**
 * Reads a server-sent event stream until `done` says so, `signal` aborts (both answer what came), or the
 * timeout, then closes the connection as a browser's EventSource would when its page goes away.
 */
export function readEventStream(url: string, o: { lastEventId?: number; done: (events: SseEvent[]) => boolean; timeoutMs?: number; signal?: AbortSignal }): Promise<{ status: number; contentType: string; events: SseEvent[] }> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (o.lastEventId !== undefined) headers['last-event-id'] = String(o.lastEventId);
    const req = http.get(url, { headers }, (res) => {
      let buffer = '';
      const timer = setTimeout(() => finish(new Error(`stream: ${events.length} events within ${o.timeoutMs ?? 15_000} ms: ${JSON.stringify(events.map((e) => e.event))}`)), o.timeoutMs ?? 15_000);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        req.destroy();
        if (err) reject(err);
        else resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), events });
      };
      o.signal?.addEventListener('abort', () => finish(), { once: true });
      if (res.statusCode !== 200) {
        res.resume();
        finish();
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(': ');
            if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2));
          }
          if (!fields.has('data')) continue;
          events.push({ id: Number(fields.get('id')), event: String(fields.get('event')), data: JSON.parse(String(fields.get('data'))) });
        }
        if (o.done(events)) finish();
      });
      res.on('error', () => undefined);
    });
    req.on('error', (err) => { if (!req.destroyed) reject(err); });
  });
}
