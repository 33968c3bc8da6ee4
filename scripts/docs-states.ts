import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { currentBlock, replaceBlock, statesBlock } from '../api/lifecycle/diagram';

/**
 * `npm run docs:states`: writes the state diagrams, drawn from the transition table, into docs/states.md,
 * its "States and transitions" section, between its markers. With `--check`, changes nothing and exits 1 when
 * the page's block differs from the table.
 */
const readme = path.resolve(__dirname, '..', '..', 'docs', 'states.md');
const text = readFileSync(readme, 'utf8');
const block = statesBlock();
if (process.argv.includes('--check')) {
  const same = currentBlock(text) === block;
  process.stdout.write(same ? 'docs/states.md: the state diagrams match the table\n' : 'docs/states.md: the state diagrams differ from the table; run npm run docs:states\n');
  process.exit(same ? 0 : 1);
}
const updated = replaceBlock(text, block);
if (updated !== text) writeFileSync(readme, updated);
process.stdout.write(`docs/states.md: state diagrams ${updated === text ? 'unchanged' : 'written'}\n`);
