import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The project's root, from dist/test/support. */
export const ROOT = path.resolve(__dirname, '..', '..', '..');

/** A documentation file's text, by its path from the root (`docs/configuration.md`). */
export function readDoc(file: string): string {
  return readFileSync(path.join(ROOT, file), 'utf8');
}

/**
 * A section of a documentation file: from its heading line (`## Configuration`, `### Metrics`) to the next
 * heading of the same or a higher level; '' when the file has no such heading.
 */
export function docSection(file: string, heading: string): string {
  const text = readDoc(file);
  const level = heading.indexOf(' ');
  const start = text.startsWith(`${heading}\n`) ? 0 : text.indexOf(`\n${heading}\n`);
  if (start < 0) return '';
  const rest = text.slice(start + 1);
  const next = new RegExp(`\\n#{1,${level}} `).exec(rest.slice(heading.length));
  return next ? rest.slice(0, heading.length + next.index + 1) : rest;
}
