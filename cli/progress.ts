import type { EndpointView, TaskTracker } from './tracker';
import { fit, type Paint, plain, taskSummary, taskTable } from './output';
import type { TaskEvent } from './types';

/** How a task's progress is shown while the CLI follows it. */
export interface ProgressView {
  start(t: TaskTracker): void;
  update(t: TaskTracker, changed: EndpointView[], event: TaskEvent): void;
  /** Shows the task as it ended (from a last GET). */
  finish(t: TaskTracker): void;
}

/** The output stream a view draws on: a terminal's has rows and columns. */
export interface Screen {
  write(text: string): unknown;
  rows?: number;
  columns?: number;
  on?(event: 'resize', listener: () => void): unknown;
  off?(event: 'resize', listener: () => void): unknown;
}

/** Lines a terminal keeps besides the endpoints: the command line above, the header, the column titles, the prompt below. */
const RESERVED_ROWS = 5;
const REDRAW_MS = 100;

/** How many endpoint rows fit on a terminal of `rows` lines. */
export const endpointRowsFor = (rows: number): number => Math.max(3, rows - RESERVED_ROWS);

/**
 * At a terminal: the task's header (bar of finished/expected, counts per state) and a line per endpoint,
 * redrawn in place as events arrive. Redrawn by moving the cursor up over the previous frame (ANSI CSI
 * "n A" and "J"), at most every 100 ms however fast the events come; lines are cut to the terminal's width
 * and the endpoints to its height (a fleet's rest summed up on one line), so that a frame never scrolls and
 * the cursor movement stays exact.
 */
export class TerminalProgress implements ProgressView {
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;
  private current: TaskTracker | null = null;
  private readonly onResize = (): void => this.schedule();

  constructor(private readonly screen: Screen, private readonly paint: Paint = plain) {}

  start(t: TaskTracker): void {
    this.current = t;
    this.screen.on?.('resize', this.onResize);
    this.draw();
  }

  update(t: TaskTracker): void {
    this.current = t;
    this.schedule();
  }

  finish(t: TaskTracker): void {
    this.current = t;
    this.draw();
    this.stop();
  }

  /** Removes the last frame (the final table takes its place). */
  erase(): void {
    this.stop();
    if (this.drawn > 0) this.screen.write(`\x1b[${this.drawn}A\r\x1b[J`);
    this.drawn = 0;
  }

  /** The frame for the current terminal size. */
  frame(t: TaskTracker): string[] {
    const rows = this.screen.rows ?? 24;
    const columns = this.screen.columns ?? 80;
    return taskTable(t, { maxRows: endpointRowsFor(rows), columns: columns - 1, paint: this.paint }).map((l) => fit(l, columns - 1));
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.draw();
    }, REDRAW_MS);
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.screen.off?.('resize', this.onResize);
  }

  private draw(): void {
    if (!this.current) return;
    const lines = this.frame(this.current);
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A\r` : '';
    this.screen.write(`${up}\x1b[J${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}

/**
 * Not at a terminal (a CI log, a file): a plain line for each change, nothing redrawn: the task when it
 * starts, each endpoint as it changes, each change of the task's status.
 */
export class LineProgress implements ProgressView {
  private status = '';

  constructor(private readonly out: Screen) {}

  /** The task as it is, with each endpoint that is past pending already. */
  start(t: TaskTracker): void {
    this.status = t.status;
    this.out.write(`${taskSummary(t)}\n`);
    this.endpointLines(t, [...t.endpoints.values()].filter((e) => t.shown(e) !== 'pending'));
  }

  update(t: TaskTracker, changed: EndpointView[]): void {
    this.endpointLines(t, changed);
    if (t.status !== this.status) {
      this.status = t.status;
      this.out.write(`${taskSummary(t)}\n`);
    }
  }

  private endpointLines(t: TaskTracker, endpoints: EndpointView[]): void {
    const name = `${t.type}/${t.identifier}`;
    for (const e of endpoints) {
      const state = t.shown(e);
      const why = state === 'failed' ? ` errnr ${e.errnr}${e.errmsg ? `: ${e.errmsg}` : ''}` : state === 'running' ? ` (attempt ${e.attempt})` : '';
      this.out.write(`${name} ${e.endpoint} ${state}${e.round > 0 ? ` (round ${e.round})` : ''}${why}\n`);
    }
  }

  finish(): void {
    // The result follows on stdout; the last change of status was already written.
  }
}
