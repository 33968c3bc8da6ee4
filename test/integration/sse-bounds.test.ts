import assert from 'node:assert/strict';
import net from 'node:net';
import { WebSocket } from 'undici';
import { Harness, Proc } from '../support/harness';
import { parseMetrics, valueOf } from '../support/prometheus';
import { maxIn, sampleRss } from '../support/rss';

const STREAMS = 100;
const MAX_BUFFERED = 256 * 1024;
const ENDPOINTS = ['w1', 'w2'];
const TASKS_PER_S = 10;
const FLOW_S = 30;
/**
 * Growth of the API's RSS allowed while the streams are unread: their buffers (100 × 256 KiB) and the
 * work of the flow. Without the bound every event (2 × 16,000 characters a task, 300 tasks) waits for
 * each of the 100 streams: some 900 MiB, less what the kernel's socket buffers take.
 */
const RSS_GROWTH_BOUND_MIB = 150;
/**
 * What the API may hold, after full garbage collections, once the streams are gone, over what it held
 * (collected alike) before they opened: the tasks' own traces (caches, metrics series, compiled code).
 * A stream's buffers kept after it closed would be 100 × at least 256 KiB (25 MiB and more); every event
 * kept for them, some 900 MiB.
 */
const RETAINED_BOUND_MIB = 12;

/**
 * Full garbage collections in a process started with `--inspect` (`HeapProfiler.collectGarbage` of the
 * inspector protocol), then its heap in use and the memory of its buffers, in MiB, from its /metrics.
 */
async function memoryAfterGc(proc: Proc, metricsUrl: string): Promise<{ heap: number; external: number }> {
  const listening = await proc.waitForLog((l) => /Debugger listening on ws:\/\//.test(String(l.text)), 5000, 'the inspector\'s address');
  const ws = new WebSocket(/ws:\/\/\S+/.exec(String(listening.text))?.[0] ?? '');
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('inspector not reachable'));
  });
  try {
    // Twice: what a first collection frees may hold more (weak references, finalizers).
    for (const id of [1, 2]) {
      await new Promise<void>((resolve, reject) => {
        ws.onmessage = (e) => { if (JSON.parse(String(e.data)).id === id) resolve(); };
        ws.onerror = () => reject(new Error('inspector connection failed'));
        ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
      });
    }
  } finally {
    // A process with an inspector client attached waits for it to leave before it exits.
    const closed = new Promise<void>((resolve) => { ws.onclose = () => resolve(); });
    ws.close();
    await closed;
  }
  const samples = parseMetrics(await (await fetch(metricsUrl)).text());
  const mib = (name: string): number => valueOf(samples, name) / 1024 / 1024;
  return { heap: mib('nodejs_heap_size_used_bytes'), external: mib('nodejs_external_memory_bytes') };
}

/** A client that asks for the stream of every event and then never reads (its socket is paused). */
function silentStream(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
      socket.pause();
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

describe('event streams: bounds on unread streams (RabbitMQ + MariaDB)', function () {
  const h = new Harness({
    // The inspector, to collect the API's garbage before measuring what it holds.
    nodeArgs: ['--inspect=127.0.0.1:0'],
    env: {
      TASKER_TASK_TYPES: '[wordy]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers', TASKER_LOG_LEVEL: 'warn',
      TASKER_API__SSE_MAX_BUFFERED_BYTES: String(MAX_BUFFERED), TASKER_API__SSE_MAX_STREAMS_PER_CLIENT: String(STREAMS),
    },
  });
  const sockets: net.Socket[] = [];

  before(async function () {
    await h.setup(this);
  });

  after(async function () {
    for (const s of sockets) s.destroy();
    await h.teardown();
  });

  async function metric(name: string): Promise<number> {
    const res = await fetch(`${h.baseUrl}/metrics`);
    return valueOf(parseMetrics(await res.text()), name);
  }

  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`never: ${what}`);
  }

  it(`refuses a client's stream past its bound (503 + Retry-After), and disconnects ${STREAMS} streams that read nothing, the API's RSS bounded`, async function () {
    const [api] = await h.startSystem([]);
    await h.startManager(ENDPOINTS, ['wordy']);
    const pid = api.child.pid as number;
    // Warmed up (code compiled, pools filled) by a few tasks and a stream, so that the level below is the working one.
    const warm = await fetch(`${h.baseUrl}/events`, { headers: { accept: 'text/event-stream' } });
    for (let i = 0; i < TASKS_PER_S; i++) assert.equal((await h.post('wordy', { identifier: `warm${i}`, endpoints: ENDPOINTS })).status, 201);
    await until('the warm-up tasks finished', async () => {
      const rows = await h.query<{ n: number }>("SELECT COUNT(*) AS n FROM task WHERE status = 'DONE'");
      return Number(rows[0].n) === TASKS_PER_S;
    });
    await warm.body?.cancel();
    await until('the warm-up stream closed', async () => await metric('tasker_sse_streams_open') === 0);
    const levelBefore = await memoryAfterGc(api, `${h.baseUrl}/metrics`);
    for (let i = 0; i < STREAMS; i++) sockets.push(await silentStream(h.port));
    await until(`${STREAMS} streams open`, async () => await metric('tasker_sse_streams_open') === STREAMS);

    const refused = await fetch(`${h.baseUrl}/events`, { headers: { accept: 'text/event-stream' } });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'too_many_streams');
    assert.equal(await metric('tasker_sse_refused_total'), 1);

    const rss = sampleRss(pid, 500);
    let n = 0;
    const done = TASKS_PER_S + FLOW_S * TASKS_PER_S;
    try {
      for (let s = 0; s < FLOW_S; s++) {
        const posts = [];
        for (let i = 0; i < TASKS_PER_S; i++) posts.push(h.post('wordy', { identifier: `t${n++}`, endpoints: ENDPOINTS }));
        for (const r of await Promise.all(posts)) assert.equal(r.status, 201, JSON.stringify(r.json));
        await new Promise((r) => setTimeout(r, 1000));
      }
      await until('every task finished', async () => {
        const rows = await h.query<{ n: number }>("SELECT COUNT(*) AS n FROM task WHERE status = 'DONE'");
        return Number(rows[0].n) === done;
      });
    } finally {
      rss.stop();
    }
    const baseline = rss.samples[0].mib;
    const peak = maxIn(rss.samples, 0, Infinity);
    console.log(`      API RSS: ${baseline.toFixed(0)} MiB before the flow, ${peak.toFixed(0)} MiB at most during it; bound ${baseline.toFixed(0)} + ${RSS_GROWTH_BOUND_MIB} MiB`);
    const slow = await metric('tasker_sse_disconnected_slow_total');
    assert.equal(slow, STREAMS, 'every unread stream disconnected as slow');
    assert.equal(await metric('tasker_sse_streams_open'), 0, 'no stream left open');
    assert.ok(api.lines.some((l) => /reads too slowly/.test(String(l.msg))), 'the disconnection is logged');
    assert.ok(peak < baseline + RSS_GROWTH_BOUND_MIB, `API RSS grew from ${baseline.toFixed(0)} to ${peak.toFixed(0)} MiB (bound: +${RSS_GROWTH_BOUND_MIB} MiB)`);

    // The slots are free again: a client's stream is admitted once the slow ones are gone.
    const again = await fetch(`${h.baseUrl}/events`, { headers: { accept: 'text/event-stream' } });
    assert.equal(again.status, 200);
    await again.body?.cancel();
    await until('that stream closed too', async () => await metric('tasker_sse_streams_open') === 0);

    // Nothing of the closed streams is kept: the heap and the buffers, collected, are back near their level
    // before them. (RSS is no measure of it: when V8 hands freed pages back to the system is its own affair.)
    const levelAfter = await memoryAfterGc(api, `${h.baseUrl}/metrics`);
    const held = (m: { heap: number; external: number }): number => m.heap + m.external;
    console.log(`      API heap + buffers after full GCs: ${levelBefore.heap.toFixed(1)} + ${levelBefore.external.toFixed(1)} MiB before the streams, `
      + `${levelAfter.heap.toFixed(1)} + ${levelAfter.external.toFixed(1)} MiB after they closed; bound +${RETAINED_BOUND_MIB} MiB`);
    assert.ok(held(levelAfter) - held(levelBefore) < RETAINED_BOUND_MIB,
      `the API holds ${(held(levelAfter) - held(levelBefore)).toFixed(1)} MiB more after the streams closed than before (bound ${RETAINED_BOUND_MIB} MiB)`);
  });
});
