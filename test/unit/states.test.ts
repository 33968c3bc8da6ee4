import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import {
  allows, ENDED_STATUSES, ENDING_EVENTS, ENDPOINT_STATE, ENDPOINT_STATES, ENDPOINT_TRANSITIONS, enter, EVENT, LIVE_STATUSES,
  shownState, sqlIn, sqlShownIs, sqlShownState, sqlWord, storedStatesFor, TASK_STATUS, TASK_STATUSES, TASK_TRANSITIONS,
} from '../../api/lifecycle/states';
import type { EndpointState, TaskStatus, Transition } from '../../api/lifecycle/states';
import { IllegalTransitionError } from '../../lib/errors';
import { readDoc } from '../support/docs';
import { currentBlock, endpointDiagram, replaceBlock, statesBlock, taskDiagram } from '../../api/lifecycle/diagram';

const line = (t: Transition<string>): string => `${t.from ?? '*'} -> ${t.to} (${t.event})`;

describe('the state table', function () {
  it('lists exactly the task transitions the server side makes', function () {
    const expected = [
      '* -> CREATED (created)',
      'CREATED -> SENT (sent)',
      'CREATED -> DONE (done)', 'SENT -> DONE (done)', 'INCOMPLETE -> DONE (done)',
      'SENT -> INCOMPLETE (incomplete)', 'CREATED -> INCOMPLETE (incomplete)',
      'CREATED -> STOPPED (stopped)', 'SENT -> STOPPED (stopped)',
      'CREATED -> CANCELLED (cancelled)', 'SENT -> CANCELLED (cancelled)', 'INCOMPLETE -> CANCELLED (cancelled)', 'STOPPED -> CANCELLED (cancelled)',
      'CREATED -> CREATED (retried)', 'SENT -> CREATED (retried)', 'DONE -> CREATED (retried)', 'INCOMPLETE -> CREATED (retried)',
      'CANCELLED -> CREATED (retried)', 'STOPPED -> CREATED (retried)',
      'SENT -> SENT (retried)', 'DONE -> SENT (retried)', 'INCOMPLETE -> SENT (retried)', 'CANCELLED -> SENT (retried)', 'STOPPED -> SENT (retried)',
    ];
    assert.deepEqual(TASK_TRANSITIONS.map(line).sort(), expected.sort());
    for (const t of TASK_TRANSITIONS) assert.ok(allows(t.from as TaskStatus, t.to, t.event), line(t));
  });

  it('lists exactly the endpoint transitions the server side makes', function () {
    const retried = ['queued', 'pending', 'succeeded', 'failed', 'missing', 'skipped', 'cancelled']
      .flatMap((s) => [`${s} -> pending (retried)`, `${s} -> queued (retried)`]);
    const expected = [
      '* -> pending (created)', '* -> queued (created)',
      'queued -> pending (sent)', 'queued -> skipped (skipped)', 'queued -> skipped (cancelled)',
      'pending -> running (received)', 'missing -> running (received)', 'cancelled -> running (received)',
      ...['pending', 'running', 'missing', 'cancelled'].flatMap((s) => [`${s} -> succeeded (finished)`, `${s} -> failed (finished)`]),
      // A run the execution deadline failed keeps a result that comes late.
      'failed -> succeeded (finished)', 'failed -> failed (finished)', 'running -> failed (timed_out)',
      'pending -> missing (missing)', 'pending -> cancelled (cancelled)', 'missing -> cancelled (cancelled)',
      // A removed endpoint will never report: whatever it had open ends cancelled (running: only when forced).
      ...['queued', 'pending', 'missing', 'running'].map((s) => `${s} -> cancelled (removed)`),
      ...retried,
    ];
    assert.deepEqual(ENDPOINT_TRANSITIONS.map(line).sort(), expected.sort());
    for (const t of ENDPOINT_TRANSITIONS) assert.ok(allows(t.from as EndpointState, t.to, t.event), line(t));
  });

  it('refuses what nobody designed', function () {
    assert.equal(allows(TASK_STATUS.DONE, TASK_STATUS.CANCELLED), false, 'a DONE task cannot be cancelled');
    assert.equal(allows(TASK_STATUS.CANCELLED, TASK_STATUS.DONE), false);
    assert.equal(allows(TASK_STATUS.SENT, TASK_STATUS.DONE, EVENT.SENT), false, 'the right pair with the wrong event');
    assert.equal(allows(ENDPOINT_STATE.RUNNING, ENDPOINT_STATE.CANCELLED, EVENT.CANCELLED), false, 'a cancel tells a running endpoint to abort, not marked');
    assert.equal(allows(ENDPOINT_STATE.QUEUED, ENDPOINT_STATE.CANCELLED, EVENT.CANCELLED), false, 'a cancelled rollout skips its queued endpoints');
    assert.equal(allows(ENDPOINT_STATE.RUNNING, ENDPOINT_STATE.PENDING), false, 'a running endpoint is never retried');
    assert.equal(allows(ENDPOINT_STATE.QUEUED, ENDPOINT_STATE.RUNNING), false);
    assert.equal(allows(ENDPOINT_STATE.SKIPPED, ENDPOINT_STATE.RUNNING), false);
    assert.equal(allows(ENDPOINT_STATE.SUCCEEDED, ENDPOINT_STATE.FAILED), false, 'a result is stored once');
  });

  it('enter moves a task or a row and answers the event, or throws', function () {
    const task = { status: TASK_STATUS.CREATED as TaskStatus };
    assert.equal(enter(task, TASK_STATUS.SENT), EVENT.SENT);
    assert.equal(task.status, TASK_STATUS.SENT);
    assert.equal(enter(task, TASK_STATUS.DONE), EVENT.DONE);
    assert.throws(() => enter(task, TASK_STATUS.CANCELLED), (e: unknown) => e instanceof IllegalTransitionError && e.code === 'illegal_transition');
    assert.equal(task.status, TASK_STATUS.DONE, 'unchanged by a refused transition');
    // A response row has the original's `status` (null, 0, 1) besides its state: the state is what moves.
    const row = { state: ENDPOINT_STATE.QUEUED as EndpointState, status: null };
    assert.equal(enter(row, ENDPOINT_STATE.SKIPPED, EVENT.CANCELLED), EVENT.CANCELLED);
    assert.deepEqual(row, { state: ENDPOINT_STATE.SKIPPED, status: null });
    assert.throws(() => enter(row, ENDPOINT_STATE.RUNNING), IllegalTransitionError);
    const received = { state: ENDPOINT_STATE.PENDING as EndpointState, status: null };
    assert.equal(enter(received, ENDPOINT_STATE.RUNNING), EVENT.RECEIVED);
    assert.equal(received.state, ENDPOINT_STATE.RUNNING);
  });

  it('splits the statuses into ended and live, and knows the events that end a task', function () {
    assert.deepEqual([...ENDED_STATUSES, ...LIVE_STATUSES].sort(), [...TASK_STATUSES].sort());
    assert.deepEqual([...ENDING_EVENTS].sort(), ['cancelled', 'done', 'incomplete', 'stopped']);
  });
});

describe('the derived state', function () {
  it('shows a pending endpoint of an INCOMPLETE task as missing, and nothing else changed', function () {
    for (const status of TASK_STATUSES) {
      for (const state of ENDPOINT_STATES) {
        const want = state === 'pending' && status === 'INCOMPLETE' ? 'missing' : state;
        assert.equal(shownState(state, status), want, `${state} of a ${status} task`);
      }
    }
  });

  it('finds the stored states of a shown state', function () {
    assert.deepEqual(storedStatesFor(ENDPOINT_STATE.MISSING, TASK_STATUS.INCOMPLETE), ['pending', 'missing']);
    assert.deepEqual(storedStatesFor(ENDPOINT_STATE.MISSING, TASK_STATUS.SENT), ['missing']);
    assert.deepEqual(storedStatesFor(ENDPOINT_STATE.PENDING, TASK_STATUS.INCOMPLETE), []);
    assert.deepEqual(storedStatesFor(ENDPOINT_STATE.PENDING, TASK_STATUS.SENT), ['pending']);
    assert.deepEqual(storedStatesFor(ENDPOINT_STATE.FAILED, TASK_STATUS.DONE), ['failed']);
  });

  it('says the same in SQL as in code, for every state and status', function () {
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE task (id INTEGER PRIMARY KEY, status TEXT); CREATE TABLE task_response (id INTEGER PRIMARY KEY, task_id INTEGER, state TEXT)');
      let id = 0;
      const expected = new Map<number, string>();
      const stored = new Map<number, { status: string; state: string }>();
      for (const status of TASK_STATUSES) {
        db.prepare('INSERT INTO task (id, status) VALUES (?, ?)').run(++id, status);
        for (const state of ENDPOINT_STATES) {
          const r = db.prepare('INSERT INTO task_response (task_id, state) VALUES (?, ?)').run(id, state);
          expected.set(Number(r.lastInsertRowid), shownState(state, status));
          stored.set(Number(r.lastInsertRowid), { status, state });
        }
      }
      const shown = db.prepare(`SELECT r.id, ${sqlShownState()} AS shown FROM task_response r JOIN task t ON t.id = r.task_id`).all() as { id: number; shown: string }[];
      assert.equal(shown.length, expected.size);
      for (const r of shown) assert.equal(r.shown, expected.get(r.id));
      for (const state of ENDPOINT_STATES) {
        const ids = (db.prepare(`SELECT r.id FROM task_response r JOIN task t ON t.id = r.task_id WHERE ${sqlShownIs(state)}`).all() as { id: number }[])
          .map((r) => r.id).sort((a, b) => a - b);
        // A pending row of a DONE, CANCELLED or STOPPED task never exists: the SQL need not show it.
        const impossible = (i: number): boolean => stored.get(i)?.state === 'pending' && (ENDED_STATUSES as string[]).includes(stored.get(i)?.status ?? '')
          && stored.get(i)?.status !== 'INCOMPLETE';
        const want = [...expected].filter(([i, s]) => s === state && !impossible(i)).map(([i]) => i);
        assert.deepEqual(ids, want, state);
      }
    } finally {
      db.close();
    }
  });

  it('quotes only state words', function () {
    assert.equal(sqlIn([TASK_STATUS.CREATED, TASK_STATUS.SENT]), `('CREATED', 'SENT')`);
    assert.equal(sqlWord(ENDPOINT_STATE.PENDING), `'pending'`);
    assert.throws(() => sqlWord(`x' OR '1` as TaskStatus));
    assert.throws(() => sqlIn([]));
  });
});

describe('the state diagrams', function () {
  it('draw every transition of the table, with its event', function () {
    const check = (diagram: string, table: readonly Transition<string>[]): void => {
      for (const t of table) {
        const arrow = diagram.split('\n').find((l) => l.trim().startsWith(`${t.from ?? '[*]'} --> ${t.to}:`));
        assert.ok(arrow?.includes(t.event), `${line(t)} in\n${diagram}`);
      }
    };
    check(taskDiagram(), TASK_TRANSITIONS);
    check(endpointDiagram(), ENDPOINT_TRANSITIONS);
    assert.match(endpointDiagram(), /note right of pending: shown missing once the task is INCOMPLETE/);
  });

  it('are in docs/states.md as the table draws them (npm run docs:states)', function () {
    assert.equal(currentBlock(readDoc('docs/states.md')), statesBlock(), 'the state diagrams of docs/states.md differ from the table: run npm run docs:states');
  });

  it('replace only the block between the markers', function () {
    const block = statesBlock();
    const text = `before\n${block.replace('CREATED --> SENT', 'CREATED --> GONE')}\nafter\n`;
    assert.equal(replaceBlock(text, block), `before\n${block}\nafter\n`);
    assert.throws(() => replaceBlock('no markers', block));
  });
});
