import { readFileSync } from 'node:fs';

/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile [N]`: the functions with the most self time in a
 * V8 CPU profile, grouped by function and file, to see where a process spends its CPU.
 */
interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

const [file, top = '25'] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  total += dt;
  const f = byId.get(id)?.callFrame;
  const where = f ? `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}` : '?';
  self.set(where, (self.get(where) ?? 0) + dt);
});
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(top));
process.stdout.write(`total ${(total / 1000).toFixed(0)} ms\n`);
for (const [where, us] of rows) process.stdout.write(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${where}\n`);
