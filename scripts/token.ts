import { bodyChecker } from '../api/operation';
import { TokenBody } from '../api/schemas';
import { TokenStore } from '../api/storage/token-store';
import { issueToken, tokenView } from '../api/tokens';
import { openDb } from './database';
import { main } from './main';
import { commaList } from '../lib/comma-list';

const checkToken = bodyChecker(TokenBody);

/**
 * `npm run token -- create NAME --scope S [--scope S...]`, `list`, `revoke NAME` (with `--mode M`): the
 * API's bearer tokens, straight in the database (so the first admin token can be made). A new token is
 * printed once; only its hash is kept.
 */
main('token', {
  scope: { type: 'string', multiple: true },
}, async ({ config, logger, values, positionals }) => {
  const [command, name, ...rest] = positionals;
  const usage = 'usage: npm run token -- create NAME --scope SCOPE[,SCOPE...] [--scope SCOPE...] | list | revoke NAME  [--mode M]\n'
    + '  scopes: submit:<task_type>, submit:*, read, operate (retry, cancel), admin (everything, tokens too)';
  if (rest.length > 0 || !['create', 'list', 'revoke'].includes(command ?? '')) throw new Error(usage);
  if (command !== 'list' && name === undefined) throw new Error(`NAME is required\n${usage}`);
  const scopes = ((values.scope as string[] | undefined) ?? []).flatMap(commaList);
  if (command === 'create') checkToken({ name, scopes });
  const ds = await openDb(config, logger);
  const store = new TokenStore(ds);
  const out = (text: string): boolean => process.stdout.write(`${text}\n`);
  try {
    if (command === 'create') {
      const { token } = await issueToken(store, name as string, scopes);
      out(`token '${name}' (${scopes.join(', ')}), shown this once; requests send it as "Authorization: Bearer <token>":`);
      out(token);
    } else if (command === 'revoke') {
      await store.revoke(name as string, new Date());
      out(`token '${name}' revoked`);
    } else {
      const tokens = (await store.list()).map(tokenView);
      out(tokens.length === 0 ? 'no tokens' : tokens.map((t) => [t.name, (t.scopes as string[]).join(','), `created ${String(t.created_time)}`,
        t.revoked_time ? `revoked ${String(t.revoked_time)}` : `last used ${String(t.last_used_time ?? 'never')}`].join('\t')).join('\n'));
    }
  } finally {
    await ds.destroy();
  }
}, undefined, { allowPositionals: true });
