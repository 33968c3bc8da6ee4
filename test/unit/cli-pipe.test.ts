import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const CLI = path.resolve(__dirname, '..', '..', 'cli', 'tasker.js');

describe('the CLI writing into a pipe its reader closed early', function () {
  it('ends without an error or a stack trace (tasker send --help | head -c 1)', function () {
    // `head -c 1` closes the pipe after one byte, long before the help text is written.
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `node ${CLI} send --help | head -c 1 >/dev/null`], { encoding: 'utf8' });
    assert.equal(r.stderr, '', 'nothing on stderr');
    assert.equal(r.status, 0, 'exit status 0');
  });
});
