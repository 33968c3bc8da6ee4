import type { HandlerResponse } from '../manager/handler';

/** `payload.sleep` in seconds simulates work (default 2, as long as the seed's handlers took); stops early on abort. */
export async function simulateWork(payload: unknown, response: HandlerResponse): Promise<void> {
  const requested = (payload as { sleep?: unknown } | null)?.sleep;
  const seconds = typeof requested === 'number' && requested >= 0 ? requested : 2;
  if (seconds === 0) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, seconds * 1000);
    response.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
