import type { Logger } from '../lib/logger';
import type { Metrics, PeerRefusal } from './metrics';

/** How long refusals of one sender and reason are gathered into one log line. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;
/**
 * Senders logged apart in one interval; the others share one line. With `shared_user` the sender is the
 * event's own claim, which a peer can vary at will.
 */
export const REFUSAL_LOG_SENDERS = 100;
const OTHERS = '(other senders)';

interface Gathered {
  count: number;
  /** What the first refusal of the interval was about, as a sample. */
  sample: Record<string, unknown>;
}

/**
 * Counts and logs what endpoints send that is refused. Each refusal is counted in the metric, but the log
 * has one line per sender and reason at the first refusal and then at most one per interval with the
 * count of the others: a peer that sends 100,000 refused events in a second must not write 100,000 lines.
 */
export class RefusalLog {
  private readonly gathered = new Map<string, Gathered & { sender: string; reason: PeerRefusal; msg: string }>();
  private readonly seen = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly log: Logger, private readonly metrics: Metrics, private readonly intervalMs = REFUSAL_LOG_INTERVAL_MS) {}

  refused(reason: PeerRefusal, sender: string | undefined, msg: string, sample: Record<string, unknown>, count = 1): void {
    this.metrics.peerRefused(reason, count);
    const who = this.seen.size >= REFUSAL_LOG_SENDERS && !this.seen.has(`${reason}\u0000${sender ?? ''}`) ? OTHERS : sender ?? '';
    const key = `${reason}\u0000${who}`;
    if (!this.seen.has(key)) {
      this.seen.add(key);
      this.log.warn({ ...sample, reason, userId: who || null, count }, msg);
      this.schedule();
      return;
    }
    const g = this.gathered.get(key);
    if (g) g.count += count;
    else this.gathered.set(key, { count, sample, sender: who, reason, msg });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.flush(); }, this.intervalMs);
    this.timer.unref();
  }

  /** Logs the gathered counts; a sender with nothing gathered is logged at once again next time. */
  flush(): void {
    this.seen.clear();
    for (const [key, g] of this.gathered) {
      this.seen.add(key);
      this.log.warn({ ...g.sample, reason: g.reason, userId: g.sender || null, count: g.count, intervalMs: this.intervalMs }, `${g.msg} (more in the interval)`);
    }
    if (this.gathered.size > 0) this.schedule();
    this.gathered.clear();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
