#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { run } from './program';

// A reader that stops early (`| head`) closes the pipe: the rest of the output has nowhere to go, which is
// not an error of the command, so it ends quietly as other Unix tools do instead of with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// The exit status is set, not forced, so that what was written to a pipe drains first.
void run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  color: process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb',
  readStdin: () => readFileSync(0, 'utf8'),
}).then((code) => {
  process.exitCode = code;
});
