import type { DataSource, EntityManager } from 'typeorm';
import type { OutputEvent, OutputStream } from '../../protocol/wire';
import { ENDED_STATUSES, ENDPOINT_STATE, EndpointState, TaskStatus } from '../lifecycle/states';
import type { EventOutcome } from './completion';
import { dialectOf, exclusive } from './database';
import { readId, readTime, sqlTime } from './sql-values';
import type { ResponseRows } from './response-rows';

/** A stored line of a run's output. */
export interface OutputRow {
  attempt: number;
  seq: number;
  stream: OutputStream | 'log';
  text: string;
  time: Date;
}

/** A position in a response's output: attempts are at most 1,000,000 and seqs below 2^30, so the pair is one safe integer. */
const SEQ_SPAN = 2 ** 30;
export const positionOf = (attempt: number, seq: number): number => attempt * SEQ_SPAN + seq;
const fromPosition = (p: number): { attempt: number; seq: number } => ({ attempt: Math.floor(p / SEQ_SPAN), seq: p % SEQ_SPAN });

/** Rows of one INSERT: lines are up to 4,000 characters, so a statement stays a few MB at most. */
const ROWS_PER_INSERT = 200;

/**
 * The runs' output lines: written by the collector, in the transaction of the events they came with,
 * read by the output route. At most `maxLines` lines of a run are kept, the first ones: a line numbered
 * past it is dropped, and the run gets one line saying so in its place.
 */
export class OutputStore {
  private readonly mysql: boolean;

  constructor(private readonly ds: DataSource, private readonly maxLines: number, private readonly responseRows: ResponseRows) {
    this.mysql = dialectOf(ds) === 'mysql';
  }

  /** Stores the lines of output events: `unknown` for a task that does not exist, `refused` for an endpoint it does not expect. */
  async append(em: EntityManager, events: readonly OutputEvent[]): Promise<EventOutcome[]> {
    if (events.length === 0) return [];
    const pairs = [...new Map(events.map((e) => [`${e.task_id}\n${e.endpoint}`, e])).values()];
    const taskIds = [...new Set(events.map((e) => e.task_id))];
    const tasks = new Set((await em.query(`SELECT id FROM task WHERE id IN (${taskIds.map(() => '?').join(', ')})`, taskIds) as { id: unknown }[])
      .map((r) => readId(r.id)));
    const rows = await em.query(
      `SELECT task_id, endpoint FROM task_response WHERE ${pairs.map(() => '(task_id = ? AND endpoint = ?)').join(' OR ')}`,
      pairs.flatMap((e) => [e.task_id, e.endpoint])) as { task_id: unknown; endpoint: string }[];
    const expected = new Set(rows.map((r) => `${readId(r.task_id)}\n${r.endpoint}`));
    const values: unknown[][] = [];
    const outcomes = events.map((e): EventOutcome => {
      if (!tasks.has(e.task_id)) return 'unknown';
      if (!expected.has(`${e.task_id}\n${e.endpoint}`)) return 'refused';
      const round = e.round ?? 0;
      e.lines.forEach((line, i) => {
        const seq = e.seq + i;
        if (seq <= this.maxLines) {
          values.push([e.task_id, e.endpoint, round, e.attempt, seq, line.stream, line.text, sqlTime(new Date(line.t))]);
        } else if (seq === this.maxLines + 1) {
          values.push([e.task_id, e.endpoint, round, e.attempt, seq, 'log', `[tasker] the lines after line ${this.maxLines} are not stored (api.output_max_lines)`, sqlTime(new Date(line.t))]);
        }
      });
      return 'stored';
    });
    const ignore = this.mysql ? 'INSERT IGNORE' : 'INSERT OR IGNORE';
    const cols = this.mysql ? 'task_id, endpoint, `round`, attempt, seq, stream, text, time' : 'task_id, endpoint, "round", attempt, seq, stream, text, time';
    for (let i = 0; i < values.length; i += ROWS_PER_INSERT) {
      const chunk = values.slice(i, i + ROWS_PER_INSERT);
      await em.query(`${ignore} INTO task_output (${cols}) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, chunk.flat());
    }
    return outcomes;
  }

  async progress(taskId: number, endpoint: string): Promise<ResponseProgress | null> {
    const progress = await responseProgress(this.ds, taskId, endpoint);
    return progress === null && await this.responseRows.ensure([taskId]) ? responseProgress(this.ds, taskId, endpoint) : progress;
  }

  /** A response's lines of a round after position `after` (see positionOf), in order: attempt, then line. */
  read(taskId: number, endpoint: string, round: number, after: number, limit: number): Promise<OutputRow[]> {
    const { attempt, seq } = fromPosition(after);
    const r = this.mysql ? '`round`' : '"round"';
    return exclusive(this.ds, async () => (await this.ds.query(
      `SELECT attempt, seq, stream, text, time FROM task_output
       WHERE task_id = ? AND endpoint = ? AND ${r} = ? AND (attempt > ? OR (attempt = ? AND seq > ?))
       ORDER BY attempt, seq LIMIT ${Math.floor(limit)}`,
      [taskId, endpoint, round, attempt, attempt, seq]) as Record<string, unknown>[]).map((row) => ({
      attempt: Number(row.attempt), seq: Number(row.seq), stream: row.stream as OutputStream, text: String(row.text), time: readTime(row.time),
    })));
  }
}

/** What the output route needs of a response: its current round, its state and its task's status. */
export interface ResponseProgress {
  round: number;
  state: EndpointState;
  taskStatus: TaskStatus;
}

/** States in which a response's round may still write output. */
const ACTIVE_STATES: readonly EndpointState[] = [ENDPOINT_STATE.QUEUED, ENDPOINT_STATE.PENDING, ENDPOINT_STATE.RUNNING];

/** Whether the round's output is complete: the round finished, was superseded by a retry, or its task ended. */
export function roundFinished(p: ResponseProgress, round: number): boolean {
  return p.round !== round || !ACTIVE_STATES.includes(p.state) || ENDED_STATUSES.includes(p.taskStatus);
}

export async function responseProgress(ds: DataSource, taskId: number, endpoint: string): Promise<ResponseProgress | null> {
  const rows = await exclusive(ds, () => ds.query(
    'SELECT r.round, r.state, t.status FROM task_response r JOIN task t ON t.id = r.task_id WHERE r.task_id = ? AND r.endpoint = ?',
    [taskId, endpoint])) as Record<string, unknown>[];
  if (rows.length === 0) return null;
  return { round: Number(rows[0].round), state: rows[0].state as EndpointState, taskStatus: rows[0].status as TaskStatus };
}
