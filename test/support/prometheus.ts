import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../config/loader';
import { ensureDebianPackage } from './debian';

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;

/** Reads the samples of a scrape (comments skipped); fails on a line that is not a sample. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the sample with this name and exactly these labels (0 when there is none). */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  const found = samples.find((s) => s.name === name && Object.keys(s.labels).length === want.length
    && want.every(([k, v]) => s.labels[k] === v));
  return found?.value ?? 0;
}

/** `promtool check metrics` on a scrape, with Debian's prometheus package installed first if need be. */
export async function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  await ensureDebianPackage('prometheus', ['promtool', ['--version']]);
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => { output += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { output += c.toString('utf8'); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** `promtool <args>` in config/prometheus (where the shipped rules and their tests are). */
export async function promtool(args: string[]): Promise<{ code: number; output: string }> {
  await ensureDebianPackage('prometheus', ['promtool', ['--version']]);
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd: path.join(projectRoot(), 'config', 'prometheus'), timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}
