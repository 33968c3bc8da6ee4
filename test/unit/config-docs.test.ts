import assert from 'node:assert/strict';
import { ConfigSchema } from '../../config/schema';
import { docSection } from '../support/docs';

interface Leaf {
  key: string;
  default: unknown;
}

/** Every key a configuration may set, with its default: a section's keys, not the section. */
function leaves(schema: Record<string, unknown>, prefix = ''): Leaf[] {
  const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
  if (schema.type === 'object' && properties) {
    return Object.entries(properties).flatMap(([name, sub]) => leaves(sub, prefix ? `${prefix}.${name}` : name));
  }
  return [{ key: prefix, default: schema.default }];
}

/** docs/configuration.md's table of configuration keys: each row's keys (a row may name several) and its default cell. */
function documented(): Map<string, string> {
  const section = docSection('docs/configuration.md', '## Configuration');
  assert.ok(section, 'docs/configuration.md has a Configuration section');
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split(' | ');
    if (!line.startsWith('| `') || cells.length < 3) continue;
    // `a.b.c` / `d`: d is c's sibling, and the defaults `x` / `y` go in the same order.
    const names = cells[0].slice(2).split(' / ').map((n) => /^`([a-z_][a-z0-9_.]*)`$/.exec(n.trim())?.[1]);
    const defaults = cells[1].split(' / ');
    let parent = '';
    names.forEach((name, i) => {
      if (name === undefined) return;
      const key = name.includes('.') || i === 0 ? name : `${parent}.${name}`;
      parent = key.slice(0, key.lastIndexOf('.'));
      rows.set(key, defaults.length === names.length ? defaults[i] : cells[1]);
    });
  }
  return rows;
}

/** A default as the table writes it: its first code span (`''` for the empty string). */
function shown(cell: string): string | null {
  const m = /`([^`]*)`/.exec(cell);
  if (!m) return null;
  return m[1] === "''" ? '' : m[1];
}

describe('the configuration table of docs/configuration.md', function () {
  const keys = leaves(ConfigSchema as unknown as Record<string, unknown>);
  const rows = documented();

  it('lists every key of the configuration schema', function () {
    const missing = keys.map((l) => l.key).filter((k) => !rows.has(k));
    assert.deepEqual(missing, [], `keys docs/configuration.md's table does not list: ${missing.join(', ')}`);
  });

  it('lists no key the schema does not have', function () {
    const known = new Set(keys.map((l) => l.key));
    const extra = [...rows.keys()].filter((k) => !known.has(k));
    assert.deepEqual(extra, [], `keys in docs/configuration.md's table that the schema does not have: ${extra.join(', ')}`);
  });

  it('gives each key the schema\'s default', function () {
    const wrong: string[] = [];
    for (const leaf of keys) {
      const cell = rows.get(leaf.key);
      if (cell === undefined || leaf.default === undefined) continue;
      const expected = typeof leaf.default === 'object' ? JSON.stringify(leaf.default) : String(leaf.default);
      const got = shown(cell);
      if (got !== expected) wrong.push(`${leaf.key}: the schema's default is ${JSON.stringify(expected)}, docs/configuration.md shows ${cell}`);
    }
    assert.deepEqual(wrong, []);
  });
});
