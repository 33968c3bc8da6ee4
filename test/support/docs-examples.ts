/**
 * Examples in the docs that are run against the real system, so that they cannot go stale. A fenced block
 * right after a line `<!-- checked -->` holds shell commands, each on a line starting with `$ ` (a line
 * ending with `\` goes on), and after each the output it prints. The output is compared with what the
 * command prints now: JSON as JSON (every key and value, times in ISO form match any time), text line by
 * line (an ISO time, also with a space for its T, matches any time; a run of two or more spaces, a table's padding, matches any run).
 */
export interface DocsCommand {
  /** 1-based line of the `$ ` line in its file. */
  line: number;
  command: string;
  expected: string;
}

export interface DocsExample {
  file: string;
  /** 1-based line of the marker. */
  line: number;
  commands: DocsCommand[];
}

const MARKER = /^<!--\s*checked\s*-->\s*$/;
const FENCE = /^(```|~~~)/;

/** The checked blocks of one markdown text, in order. */
export function checkedExamples(markdown: string, file: string): DocsExample[] {
  const lines = markdown.split('\n');
  const out: DocsExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!MARKER.test(lines[i])) continue;
    const open = lines[i + 1] ?? '';
    if (!FENCE.test(open)) throw new Error(`${file}:${i + 1}: a checked marker must be followed by a fenced block`);
    const fence = open.slice(0, 3);
    let end = i + 2;
    while (end < lines.length && !lines[end].startsWith(fence)) end++;
    if (end >= lines.length) throw new Error(`${file}:${i + 2}: the checked block is not closed`);
    out.push({ file, line: i + 1, commands: commandsOf(lines.slice(i + 2, end), i + 3, file) });
    i = end;
  }
  return out;
}

function commandsOf(body: string[], firstLine: number, file: string): DocsCommand[] {
  const commands: DocsCommand[] = [];
  for (let j = 0; j < body.length; j++) {
    if (!body[j].startsWith('$ ')) {
      if (commands.length === 0) throw new Error(`${file}:${firstLine + j}: a checked block starts with a '$ ' command line`);
      const last = commands[commands.length - 1];
      last.expected += `${last.expected === '' ? '' : '\n'}${body[j]}`;
      continue;
    }
    const line = firstLine + j;
    let command = body[j].slice(2);
    // The shell reads a backslash before a newline as a continued line.
    while (command.endsWith('\\') && j + 1 < body.length) command = `${command}\n${body[++j]}`;
    commands.push({ line, command, expected: '' });
  }
  return commands;
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/;
const ISO_TIME_IN_TEXT = /\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)/g;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 120 ? `${s.slice(0, 117)}...` : s;
};

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** Where `actual` differs from `expected` (JSON values), or null. */
export function jsonDifference(expected: unknown, actual: unknown, at = '$'): string | null {
  if (typeof expected === 'string' && ISO_TIME.test(expected)) {
    return typeof actual === 'string' && ISO_TIME.test(actual) ? null : `${at}: expected a time, got ${show(actual)}`;
  }
  if (kind(expected) !== kind(actual)) return `${at}: expected ${show(expected)}, got ${show(actual)}`;
  if (Array.isArray(expected)) {
    const a = actual as unknown[];
    if (a.length !== expected.length) return `${at}: expected ${expected.length} items, got ${a.length}: ${show(actual)}`;
    for (let i = 0; i < a.length; i++) {
      const d = jsonDifference(expected[i], a[i], `${at}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (kind(expected) === 'object') {
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    const missing = Object.keys(e).filter((k) => !(k in a));
    const extra = Object.keys(a).filter((k) => !(k in e));
    if (missing.length || extra.length) {
      return `${at}: ${missing.length ? `the docs show ${missing.join(', ')}, which the output lacks` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `the output has ${extra.join(', ')}, which the docs do not show` : ''}`;
    }
    for (const k of Object.keys(e)) {
      const d = jsonDifference(e[k], a[k], `${at}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return expected === actual ? null : `${at}: expected ${show(expected)}, got ${show(actual)}`;
}

function linePattern(line: string): RegExp {
  const parts = line.trimEnd().split(ISO_TIME_IN_TEXT).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/ {2,}/g, ' {2,}'));
  return new RegExp(`^${parts.join(ISO_TIME_IN_TEXT.source)}$`);
}

/** Why `actual` is not what the docs show as `expected`, or null when it is. */
export function outputDifference(expected: string, actual: string): string | null {
  const e = expected.trim();
  const a = actual.trim();
  const whole = e === '' ? undefined : parseJson(e);
  if (whole !== undefined) {
    const got = parseJson(a);
    return got === undefined ? `expected JSON, got: ${a.slice(0, 200)}` : jsonDifference(whole, got);
  }
  const el = e === '' ? [] : e.split('\n');
  const al = a === '' ? [] : a.split('\n');
  if (el.length !== al.length) return `expected ${el.length} lines, got ${al.length}:\n${a.slice(0, 2000)}`;
  for (let i = 0; i < el.length; i++) {
    const lineJson = parseJson(el[i]);
    if (lineJson !== undefined && typeof lineJson === 'object') {
      const got = parseJson(al[i]);
      const d = got === undefined ? `expected JSON, got: ${al[i].slice(0, 200)}` : jsonDifference(lineJson, got);
      if (d) return `line ${i + 1}: ${d}`;
    } else if (!linePattern(el[i]).test(al[i].trimEnd())) {
      return `line ${i + 1}: expected '${el[i]}', got '${al[i]}'`;
    }
  }
  return null;
}
