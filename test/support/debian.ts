import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { succeeds } from './services';

const run = promisify(execFile);

/**
 * Makes sure a Debian package is installed, installing it (with the package index refreshed) when the
 * check fails: the tests bring what they need onto the machine.
 */
export async function ensureDebianPackage(pkg: string, check: [string, string[]]): Promise<void> {
  if (await succeeds(...check)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-qq'], { timeout: 300_000, env });
  await run('apt-get', ['install', '-y', '-qq', pkg], { timeout: 600_000, env });
  if (!(await succeeds(...check))) throw new Error(`${pkg} installed, but \`${check[0]} ${check[1].join(' ')}\` still fails`);
}
