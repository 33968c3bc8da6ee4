import type { Logger } from '../lib/logger';
import type { IncomingMessage } from '../protocol/broker';
import type { ServerTransport } from '../protocol/server-transport';
import { decodeNotice, NoticeTask } from '../protocol/wire';
import type { History, StoredEvent } from './storage/history';
import { ENDING_EVENTS } from './lifecycle/states';

/** Events that end a task (for waiting clients: a late response may still turn INCOMPLETE into DONE). */
const ENDING = new Set<string>(ENDING_EVENTS);
/** A comment line on every open stream this often, so that proxies and clients keep the connection. */
const KEEP_ALIVE_MS = 15_000;
/** Events read per catch-up query of a task's streams. */
const CATCH_UP_BATCH = 1000;
/**
 * How soon the stream of every task reads again while an event waits for an open transaction: its commit
 * is announced (and read at once), a rollback is not, so this read lets the stream go on past it.
 */
export const HELD_REREAD_MS = 1000;

/**
 * Catches streams up with one read at a time: a call while a read runs makes one more read follow it, so
 * that nothing committed meanwhile is left behind and concurrent notices do not multiply the reads.
 */
class SerialRead {
  private reading = false;
  private again = false;

  get busy(): boolean {
    return this.reading;
  }

  /** `step` reads and sends once; it answers whether a full batch came (more may be waiting). */
  async run(step: () => Promise<boolean>, onError: (err: unknown) => void): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        if (await step()) this.again = true;
      } while (this.again);
    } catch (err) {
      onError(err);
    } finally {
      this.reading = false;
    }
  }
}

/** Sends each stream the events it has not had yet (and wants), and moves it past them. */
function deliver<S extends { sink: EventSink; lastId: number }>(streams: Iterable<S>, events: StoredEvent[], wanted: (s: S, e: StoredEvent) => boolean): void {
  for (const s of streams) {
    const fresh = events.filter((e) => e.id > s.lastId && wanted(s, e));
    if (events.length > 0) s.lastId = Math.max(s.lastId, events[events.length - 1].id);
    if (fresh.length > 0) s.sink.send(fresh);
  }
}

export interface EventSink {
  /** Sends events (oldest first) to the client. */
  send(events: StoredEvent[]): void;
  /** A comment line, to keep the connection. */
  ping(): void;
  close(): void;
}

interface TaskStream {
  sink: EventSink;
  /** The id of the last event sent: only newer ones follow. */
  lastId: number;
}

interface GlobalStream {
  sink: EventSink;
  type: string | null;
  lastId: number;
}

interface TaskWatch {
  waiters: Set<() => void>;
  streams: Set<TaskStream>;
  read: SerialRead;
}

/**
 * Wakes the clients of this API process when a task's history moves, whichever process wrote it: every
 * writer announces the events it committed on the notify fanout, and every API process consumes its own
 * exclusive queue of it. A waiting client (`?wait=`) is answered when its task ends; a task's event
 * stream reads the new events from the database (one read per task however many clients stream it, and
 * complete, since a task's events are committed in id order under its lock); the stream of every task
 * reads them too, in id order, never past an id whose transaction is still open (see
 * storage/uncommitted.ts). An idle client
 * costs its socket and an entry in a map.
 */
export class WatchHub {
  private readonly tasks = new Map<number, TaskWatch>();
  private readonly all = new Set<GlobalStream>();
  private readonly allRead = new SerialRead();
  private heldTimer: NodeJS.Timeout | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly history: History, private readonly transport: ServerTransport, logger: Logger) {
    this.log = logger.child({ component: 'watch' });
  }

  start(): Promise<void> {
    this.keepAlive = setInterval(() => this.ping(), KEEP_ALIVE_MS);
    this.keepAlive.unref();
    return this.transport.consumeNotices((m) => this.onNotice(m));
  }

  /** What storage calls once a transaction with history committed. */
  readonly announce = (events: StoredEvent[]): void => {
    if (events.length === 0) return;
    const tasks = new Map<number, NoticeTask>();
    for (const e of events) {
      const t = tasks.get(e.task_id) ?? { id: e.task_id, type: e.type, last: e.id, ended: false };
      t.last = Math.max(t.last, e.id);
      t.ended ||= ENDING.has(e.kind);
      tasks.set(e.task_id, t);
    }
    this.transport.publishNotice({ tasks: [...tasks.values()] }).catch((err: unknown) => {
      // Best effort: a client waiting on these tasks is answered at its timeout; a stream catches up at the next notice.
      this.log.debug({ err }, 'notice not published');
    });
  };

  private onNotice(m: IncomingMessage): void {
    m.ack();
    let tasks: NoticeTask[];
    try {
      tasks = decodeNotice(m.body).tasks;
    } catch (err) {
      this.log.warn({ err }, 'invalid notice ignored');
      return;
    }
    for (const t of tasks) {
      const watch = this.tasks.get(t.id);
      if (!watch) continue;
      if (t.ended) {
        for (const wake of watch.waiters) wake();
        watch.waiters.clear();
      }
      if (watch.streams.size > 0) void this.catchUp(t.id, watch);
      this.forget(t.id, watch);
    }
    if (this.all.size > 0 && tasks.some((t) => [...this.all].some((s) => s.type === null || s.type === t.type))) void this.catchUpAll();
  }

  private watch(taskId: number): TaskWatch {
    let w = this.tasks.get(taskId);
    if (!w) this.tasks.set(taskId, w = { waiters: new Set(), streams: new Set(), read: new SerialRead() });
    return w;
  }

  private forget(taskId: number, w: TaskWatch): void {
    if (w.waiters.size === 0 && w.streams.size === 0 && !w.read.busy) this.tasks.delete(taskId);
  }

  /**
   * Resolves when the task ends (true) or after `timeoutMs` (false). Register before reading the task,
   * so that an end between the read and the wait is not missed.
   */
  waiter(taskId: number, timeoutMs: number): { ended: Promise<boolean>; cancel: () => void } {
    const w = this.watch(taskId);
    let done = (_ended: boolean): void => undefined;
    const ended = new Promise<boolean>((resolve) => { done = resolve; });
    const wake = (): void => { clearTimeout(timer); done(true); };
    const timer = setTimeout(() => {
      w.waiters.delete(wake);
      this.forget(taskId, w);
      done(false);
    }, timeoutMs);
    w.waiters.add(wake);
    return {
      ended,
      cancel: () => {
        clearTimeout(timer);
        w.waiters.delete(wake);
        this.forget(taskId, w);
        done(false);
      },
    };
  }

  /** Streams a task's events after `lastId`: what is stored first, then each change as it is committed. */
  streamTask(taskId: number, lastId: number, sink: EventSink): () => void {
    const w = this.watch(taskId);
    const stream: TaskStream = { sink, lastId };
    w.streams.add(stream);
    void this.catchUp(taskId, w);
    return () => {
      w.streams.delete(stream);
      this.forget(taskId, w);
    };
  }

  private async catchUp(taskId: number, w: TaskWatch): Promise<void> {
    await w.read.run(async () => {
      if (w.streams.size === 0) return false;
      const events = await this.history.forTask(taskId, Math.min(...[...w.streams].map((s) => s.lastId)), CATCH_UP_BATCH);
      deliver(w.streams, events, () => true);
      return events.length === CATCH_UP_BATCH;
    }, (err) => this.log.warn({ taskId, err }, 'could not read the events of a streamed task; the next change retries'));
    this.forget(taskId, w);
  }

  /**
   * Streams every task's events (of one type, if given) after `lastId` as they are announced, in id order
   * with none left out: an event is held back while an older id's transaction is still open (see
   * `History.after`).
   */
  streamAll(type: string | null, lastId: number, sink: EventSink): () => void {
    const entry: GlobalStream = { sink, type, lastId };
    this.all.add(entry);
    void this.catchUpAll();
    return () => { this.all.delete(entry); };
  }

  private async catchUpAll(): Promise<void> {
    await this.allRead.run(async () => {
      if (this.all.size === 0) return false;
      const from = Math.min(...[...this.all].map((s) => s.lastId));
      const { events, held } = await this.history.after(from, null, CATCH_UP_BATCH);
      deliver(this.all, events, (s, e) => s.type === null || e.type === s.type);
      if (held) {
        // The notice of the open transaction's commit reads again; this read covers a rollback.
        this.readAllAfter(HELD_REREAD_MS);
        return false;
      }
      return events.length === CATCH_UP_BATCH;
    }, (err) => this.log.warn({ err }, 'could not read the events of the event streams; the next change retries'));
  }

  private readAllAfter(ms: number): void {
    if (this.heldTimer) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = null;
      void this.catchUpAll();
    }, ms);
    this.heldTimer.unref();
  }

  private ping(): void {
    for (const w of this.tasks.values()) for (const s of w.streams) s.sink.ping();
    for (const s of this.all) s.sink.ping();
  }

  /** Ends every stream and answers every waiting client (shutdown). */
  closeAll(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = null;
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.heldTimer = null;
    for (const w of this.tasks.values()) {
      for (const wake of w.waiters) wake();
      for (const s of w.streams) s.sink.close();
    }
    this.tasks.clear();
    for (const s of this.all) s.sink.close();
    this.all.clear();
  }
}
