#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { run } from './program';

// The exit status is set, not forced, so that what was written to a pipe drains first.
void run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  color: process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb',
  readStdin: () => readFileSync(0, 'utf8'),
}).then((code) => {
  process.exitCode = code;
});
