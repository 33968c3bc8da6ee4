import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { CommandType, compilePayloadSchema, describePayloadFailure, fillPlaceholders } from '../config/command-types';
import {
  ERRNR_COMMAND_BAD_PAYLOAD, ERRNR_COMMAND_NOT_STARTED, ERRNR_COMMAND_SIGNALLED, ERRNR_COMMAND_TIMEOUT,
} from '../protocol/wire';
import { HandlerResult, HandlerTask, storableResult } from './handler';
import { OutputTail } from './output-tail';
import { LineSplitter, RunOutput } from './run-output';

/** What a command type's response payload holds (docs/handlers.md "Command task types"). */
export interface CommandOutput {
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  stdout_bytes: number;
  stderr_bytes: number;
  truncated: { stdout: boolean; stderr: boolean };
}

export interface CommandRunnerOptions {
  /** The type's `timeout`, else `manager.handler_timeout`. */
  timeoutMs: number;
  /** Between the SIGTERM and the SIGKILL of the run's process group (`manager.kill_grace`). */
  killGraceMs: number;
}

/**
 * After the SIGKILL, how long the output pipes may stay open: a process that left the run's group (setsid)
 * may hold them; the run ends without the rest of its output rather than wait for it.
 */
const PIPE_DRAIN_MS = 1000;

/** Most characters of stderr's last line quoted in the errmsg of a failed run. */
const ERRMSG_STDERR_CHARS = 500;

/** uid and primary gid of a user name, from the system's user database (NSS included). */
export function resolveUser(name: string): { uid: number; gid: number } {
  const id = (flag: string): number => {
    try {
      return Number(execFileSync('id', [flag, '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    } catch {
      throw new Error(`user '${name}' does not exist on this host`);
    }
  };
  return { uid: id('-u'), gid: id('-g') };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing of the group is left.
  }
}

function lastLine(text: string): string {
  const line = text.trimEnd().split('\n').pop() ?? '';
  return line.length > ERRMSG_STDERR_CHARS ? `…${line.slice(line.length - ERRMSG_STDERR_CHARS)}` : line;
}

/**
 * The handler of a command task type: runs its program as a child process in a process group of its own
 * (no shell unless the type says `shell: true`), with only the allowed environment, and reports its exit
 * code and the end of its output. A timeout, a cancel or a shutdown ends the whole group: SIGTERM, then
 * SIGKILL after the grace, so that nothing the run started outlives it (unless it left the group).
 */
export class CommandRunner {
  private readonly env: NodeJS.ProcessEnv;
  private readonly identity: { uid: number; gid: number } | null;
  /** Process groups of the runs under way. */
  private readonly live = new Set<number>();
  /** Set by a shutdown that killed the runs: they end without a result, so that their deliveries are handed back. */
  private killed = false;

  constructor(readonly type: string, readonly def: CommandType, private readonly o: CommandRunnerOptions, processEnv: NodeJS.ProcessEnv) {
    this.env = Object.fromEntries(def.env.filter((n) => processEnv[n] !== undefined).map((n) => [n, processEnv[n]]));
    this.identity = null;
    if (def.user !== undefined) {
      let id: { uid: number; gid: number };
      try {
        id = resolveUser(def.user);
      } catch (err) {
        throw new Error(`task type '${type}': ${(err as Error).message}`);
      }
      const own = process.getuid?.();
      if (own !== 0 && own !== id.uid) throw new Error(`task type '${type}': running as user '${def.user}' needs a manager running as root`);
      this.identity = id;
    }
    if (def.payload_schema !== undefined) compilePayloadSchema(def.payload_schema);
  }

  get timeoutMs(): number {
    return this.o.timeoutMs;
  }

  /** Runs the command for a task; never throws: every outcome is a result. */
  run(task: HandlerTask, cancel: AbortSignal, output?: RunOutput): Promise<HandlerResult> {
    if (this.def.payload_schema !== undefined) {
      const validate = compilePayloadSchema(this.def.payload_schema);
      if (!validate(task.payload)) return Promise.resolve({ payload: null, errnr: ERRNR_COMMAND_BAD_PAYLOAD, errmsg: describePayloadFailure(validate) });
    }
    let argv: string[];
    try {
      argv = this.def.shell ? ['/bin/sh', '-c', this.def.command[0]] : fillPlaceholders(this.def.command, task.payload);
    } catch (err) {
      return Promise.resolve({ payload: null, errnr: ERRNR_COMMAND_BAD_PAYLOAD, errmsg: (err as Error).message });
    }
    return new Promise<HandlerResult>((resolve, reject) => this.start(argv, cancel, output, (result) => {
      if (this.killed) reject(new Error('the manager is shutting down: the command was killed and its task is handed back'));
      else resolve(result);
    }));
  }

  /**
   * SIGKILLs the process group of every run under way (a shutdown whose time is over): their runs end
   * with an error rather than a result, so that their deliveries go back to the queue. Returns how many.
   */
  killAll(): number {
    this.killed = true;
    for (const pid of this.live) killGroup(pid, 'SIGKILL');
    return this.live.size;
  }

  get running(): number {
    return this.live.size;
  }

  private start(argv: string[], cancel: AbortSignal, output: RunOutput | undefined, resolve: (r: HandlerResult) => void): void {
    const stdout = new OutputTail(this.def.output_limit.stdout);
    const stderr = new OutputTail(this.def.output_limit.stderr);
    const outLines = output ? new LineSplitter((text) => output.line('stdout', text)) : null;
    const errLines = output ? new LineSplitter((text) => output.line('stderr', text)) : null;
    let child: ChildProcess;
    const notStarted = (err: NodeJS.ErrnoException): void => {
      const where = this.def.cwd ? ` (or the working directory ${this.def.cwd})` : '';
      const why = err.code === 'ENOENT' ? `: ${argv[0]}${where} does not exist` : err.code === 'EACCES' ? `: ${argv[0]} is not executable` : '';
      resolve({ payload: null, errnr: ERRNR_COMMAND_NOT_STARTED, errmsg: `could not start ${argv[0]}: ${err.code ?? err.message}${why}` });
    };
    try {
      child = spawn(argv[0], argv.slice(1), {
        shell: false, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: this.env, windowsHide: true,
        ...(this.def.cwd !== undefined ? { cwd: this.def.cwd } : {}),
        ...(this.identity ?? {}),
      });
    } catch (err) {
      notStarted(err as NodeJS.ErrnoException);
      return;
    }
    let settled = false;
    let timedOut = false;
    let terminating = false;
    const timers: NodeJS.Timeout[] = [];
    const pid = child.pid;
    const killGrace = this.o.killGraceMs;
    const finish = (result: HandlerResult): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      cancel.removeEventListener('abort', terminate);
      if (pid !== undefined) this.live.delete(pid);
      resolve(result);
    };
    const closePipesSoon = (): void => {
      timers.push(setTimeout(() => { child.stdout?.destroy(); child.stderr?.destroy(); }, PIPE_DRAIN_MS));
    };
    function terminate(this: void): void {
      if (terminating || pid === undefined) return;
      terminating = true;
      killGroup(pid, 'SIGTERM');
      timers.push(setTimeout(() => {
        killGroup(pid, 'SIGKILL');
        closePipesSoon();
      }, killGrace));
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (pid === undefined) {
        settled = true;
        notStarted(err);
      }
    });
    if (pid === undefined) return;
    this.live.add(pid);
    child.stdout?.on('data', (c: Buffer) => { stdout.push(c); outLines?.push(c); });
    child.stderr?.on('data', (c: Buffer) => { stderr.push(c); errLines?.push(c); });
    timers.push(setTimeout(() => { timedOut = true; terminate(); }, this.o.timeoutMs));
    if (cancel.aborted) terminate();
    else cancel.addEventListener('abort', terminate, { once: true });
    // The run is its program: what it left behind in its group (a background job, which would hold the
    // output pipes open until the timeout) ends when it does. The group outlives its leader's exit, so
    // the pgid is still this run's.
    child.once('exit', () => {
      if (pid === undefined) return;
      killGroup(pid, 'SIGKILL');
      closePipesSoon();
    });
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      outLines?.end();
      errLines?.end();
      const out = stdout.text();
      const err = stderr.text();
      const payload: CommandOutput = {
        exit_code: code, signal, stdout: out.text, stderr: err.text, stdout_bytes: stdout.bytes, stderr_bytes: stderr.bytes,
        truncated: { stdout: out.truncated, stderr: err.truncated },
      };
      const tail = lastLine(err.text);
      let errnr = 0;
      let errmsg: string | null = null;
      if (timedOut) {
        errnr = ERRNR_COMMAND_TIMEOUT;
        errmsg = `timed out after ${this.o.timeoutMs / 1000} s: its process group was sent SIGTERM, and SIGKILL ${killGrace / 1000} s later if still running`;
      } else if (signal !== null) {
        errnr = ERRNR_COMMAND_SIGNALLED;
        errmsg = `killed by ${signal}${cancel.aborted ? ' (cancelled)' : ''}`;
      } else if (code !== 0 && code !== null) {
        errnr = code;
        errmsg = `exited with code ${code}${tail ? `: ${tail}` : ''}`;
      }
      finish(storableResult(payload, errnr, errmsg));
    });
  }
}
