import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createLogger, logContext, LogLevel } from '../../lib/logger';

/** A logger whose lines are parsed into `lines` instead of written to stdout/stderr. */
function capture(base: Record<string, unknown> = {}, level: LogLevel = 'info') {
  const lines: Record<string, any>[] = [];
  const destination = { write: (s: string): void => { for (const l of s.split('\n').filter(Boolean)) lines.push(JSON.parse(l)); } };
  return { log: createLogger(base, level, { destination }), lines };
}

describe('logger (pino, JSON lines)', function () {
  it('writes through stdout and stderr when their write() was replaced, as pm2 does in cluster mode to carry lines over IPC', function () {
    const seen: { out: string[]; err: string[] } = { out: [], err: [] };
    const replace = (stream: NodeJS.WriteStream, into: string[]): void => {
      Object.defineProperty(stream, 'write', { configurable: true, writable: true, value: (chunk: string | Uint8Array): boolean => {
        into.push(String(chunk));
        return true;
      } });
    };
    replace(process.stdout, seen.out);
    replace(process.stderr, seen.err);
    try {
      const log = createLogger({ process: 'api' });
      log.info('through pm2');
      log.error('an error through pm2');
    } finally {
      delete (process.stdout as unknown as Record<string, unknown>).write;
      delete (process.stderr as unknown as Record<string, unknown>).write;
    }
    assert.deepEqual(seen.out.map((l) => JSON.parse(l).msg), ['through pm2']);
    assert.deepEqual(seen.err.map((l) => JSON.parse(l).msg), ['an error through pm2']);
  });

  it('writes one JSON object per line: ISO time, level by name, msg, base fields, child bindings and fields', function () {
    const { log, lines } = capture({ process: 'manager' });
    const before = Date.now();
    log.child({ endpoint: 'console1' }).child({ taskId: 7, identifier: 'job-7' }).info({ attempt: 0 }, 'running handler');
    log.warn('plain message');
    assert.equal(lines.length, 2);
    const [line] = lines;
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Date.parse(line.time) >= before - 1 && Date.parse(line.time) <= Date.now());
    assert.deepEqual({ ...line, time: undefined }, {
      time: undefined, level: 'info', msg: 'running handler', pid: process.pid, hostname: os.hostname(), process: 'manager',
      endpoint: 'console1', taskId: 7, identifier: 'job-7', attempt: 0,
    });
    assert.equal(lines[1].level, 'warn');
    assert.equal(lines[1].msg, 'plain message');
  });

  it('leaves out lines below its level', function () {
    const { log, lines } = capture({}, 'info');
    log.debug({ taskId: 1 }, 'not for this endpoint');
    log.info('kept');
    assert.deepEqual(lines.map((l) => l.msg), ['kept']);
    const verbose = capture({}, 'debug');
    verbose.log.debug('shown');
    assert.deepEqual(verbose.lines.map((l) => [l.level, l.msg]), [['debug', 'shown']]);
  });

  it('serializes an error under err with its type, message, stack, code and cause', function () {
    const { log, lines } = capture();
    const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    log.error({ err: new Error('publish failed', { cause }) }, 'could not publish');
    const { err } = lines[0];
    assert.equal(err.type, 'Error');
    assert.equal(err.message, 'publish failed');
    assert.match(err.stack, /^Error: publish failed\n\s+at /);
    assert.equal(err.cause.message, 'connect ECONNREFUSED');
    assert.equal(err.cause.code, 'ECONNREFUSED');
  });

  it('adds req_id to every line logged inside logContext.run, across awaits, and to no other line', async function () {
    const { log, lines } = capture();
    const deep = log.child({ component: 'collector' });
    await logContext.run({ req_id: 'req-1' }, async () => {
      log.info({ a: 1 }, 'inside');
      await new Promise((resolve) => setTimeout(resolve, 1));
      deep.warn('deeper, later');
    });
    log.info({ b: 2 }, 'outside');
    log.info('outside again');
    assert.deepEqual(lines.map((l) => [l.msg, l.req_id]), [['inside', 'req-1'], ['deeper, later', 'req-1'], ['outside', undefined], ['outside again', undefined]]);
    // One line's fields must not leak into the next one.
    assert.equal(lines[3].b, undefined);
    assert.equal(lines[1].a, undefined);
  });

  it('writes debug and info to stdout, warn and error to stderr', function () {
    const logger = path.join(__dirname, '..', '..', 'lib', 'logger.js');
    const script = `const log = require(${JSON.stringify(logger)}).createLogger({}, 'debug');`
      + 'log.debug("d"); log.info("i"); log.warn("w"); log.error("e");';
    const { stdout, stderr, status } = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(status, 0);
    const msgs = (text: string): string[] => text.trim().split('\n').map((l) => JSON.parse(l).msg);
    assert.deepEqual(msgs(stdout), ['d', 'i']);
    assert.deepEqual(msgs(stderr), ['w', 'e']);
  });
});
