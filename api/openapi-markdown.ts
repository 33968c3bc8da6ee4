/**
 * The HTTP reference (`docs/http-api.md`) written from the OpenAPI document, so that it says what the
 * routes declare and cannot drift from them: `npm run docs:http` writes it, a test checks it is current.
 */
type Json = Record<string, unknown>;

const REF = '#/components/schemas/';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n+/g, ' ');
}

/** A schema's type in a few words: `string`, `integer (1 to 30)`, `Task`, `array of string`, `a | b`. */
export function typeOf(schema: unknown): string {
  const s = (schema ?? {}) as Json;
  if (typeof s.$ref === 'string') return s.$ref.startsWith(REF) ? `[${s.$ref.slice(REF.length)}](#${s.$ref.slice(REF.length).toLowerCase()})` : s.$ref;
  if (Array.isArray(s.anyOf)) return (s.anyOf as unknown[]).map(typeOf).join(' or ');
  if (Array.isArray(s.enum)) return (s.enum as unknown[]).map((v) => `\`${String(v)}\``).join(', ');
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.type === 'array') return `array of ${typeOf(s.items)}`;
  const bounds = [s.minimum, s.maximum].every((b) => typeof b === 'number') ? ` (${String(s.minimum)} to ${String(s.maximum)})`
    : typeof s.minimum === 'number' ? ` (at least ${String(s.minimum)})` : typeof s.maximum === 'number' ? ` (at most ${String(s.maximum)})` : '';
  if (typeof s.type === 'string') return `${s.type}${bounds}`;
  if (Array.isArray(s.type)) return (s.type as string[]).join(' or ');
  return 'any JSON';
}

/** The description of a schema, or of the first branch of an `anyOf` that has one. */
function describe(schema: unknown): string {
  const s = (schema ?? {}) as Json;
  if (typeof s.description === 'string') return s.description;
  const branch = Array.isArray(s.anyOf) ? (s.anyOf as Json[]).find((b) => typeof b.description === 'string') : undefined;
  return typeof branch?.description === 'string' ? branch.description : '';
}

/** A table of an object schema's fields (one level; nested objects get their own rows with a dotted name). */
function fields(schema: Json, prefix = ''): string[] {
  const props = (schema.properties ?? {}) as Record<string, Json>;
  const required = new Set((schema.required ?? []) as string[]);
  const rows: string[] = [];
  for (const [name, sub] of Object.entries(props)) {
    const full = `${prefix}${name}`;
    rows.push(`| \`${full}\` | ${cell(typeOf(sub))} | ${required.has(name) ? 'yes' : ''} | ${cell(describe(sub))} |`);
    if (sub.type === 'object' && sub.properties) rows.push(...fields(sub, `${full}.`));
  }
  return rows;
}

function fieldTable(schema: Json): string[] {
  const rows = fields(schema);
  return rows.length ? ['| field | type | required | meaning |', '| --- | --- | --- | --- |', ...rows] : [];
}

function operation(method: string, path: string, op: Json): string[] {
  const out = [`### \`${method.toUpperCase()} ${path}\``, '', String(op.summary ?? '')];
  if (op.description) out.push('', String(op.description));
  out.push('', `Scope: ${op['x-scope'] ? `\`${String(op['x-scope'])}\`` : 'none (open)'}.`);
  const params = (op.parameters ?? []) as Json[];
  if (params.length) {
    out.push('', '| parameter | in | type | meaning |', '| --- | --- | --- | --- |');
    for (const p of params) out.push(`| \`${String(p.name)}\` | ${String(p.in)} | ${cell(typeOf(p.schema))} | ${cell(describe(p.schema) || String(p.description ?? ''))} |`);
  }
  const body = ((op.requestBody as Json | undefined)?.content as Record<string, Json> | undefined)?.['application/json']?.schema as Json | undefined;
  if (body) {
    out.push('', `Body: ${typeOf(body) === 'object' ? 'a JSON object' : typeOf(body)}.`);
    const table = fieldTable(body);
    if (table.length) out.push('', ...table);
    if (body.example !== undefined) out.push('', '```json', JSON.stringify(body.example), '```');
  }
  out.push('', '| status | meaning | body |', '| --- | --- | --- |');
  for (const [status, r] of Object.entries((op.responses ?? {}) as Record<string, Json>)) {
    const content = (r.content ?? {}) as Record<string, Json>;
    const bodies = Object.entries(content).map(([type, c]) => (type === 'application/json' ? typeOf(c.schema) : `\`${type}\``));
    out.push(`| ${status} | ${cell(String(r.description ?? ''))} | ${cell(bodies.join(', '))} |`);
  }
  return [...out, ''];
}

/** The whole reference: every route grouped by its tag, then the shared schemas. */
export function httpReference(doc: Json): string {
  const info = doc.info as Json;
  const byTag = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = String(((op.tags ?? []) as string[])[0] ?? 'other');
      byTag.set(tag, [...byTag.get(tag) ?? [], ...operation(method, path, op)]);
    }
  }
  const out = [
    '# HTTP API reference',
    '',
    '<!-- Written by `npm run docs:http` from the OpenAPI document that GET /openapi.json serves; a test checks it is current. Do not edit by hand. -->',
    '',
    String(info.description ?? ''),
    '',
    'Every answer is JSON; an error is `{"error": {"code": "...", "message": "..."}}` ([Error](#error)) with the status below. With `api.auth: tokens`, every route with a scope needs `Authorization: Bearer <token>` with that scope (`submit:{type}` is per task type), and answers 401 (no valid token), 403 (another scope) or 429 (too many failed token checks) besides those listed. `{type}` is one of the configured task types (here the standalone mode\'s).',
    '',
    '## Routes',
    '',
    ...[...byTag.keys()].map((tag) => `- [${tag}](#${tag.toLowerCase()})`),
    '',
  ];
  for (const [tag, lines] of byTag) out.push(`## ${tag}`, '', ...lines);
  out.push('## Schemas', '');
  for (const [name, schema] of Object.entries((doc.components as Json).schemas as Record<string, Json>)) {
    out.push(`### ${name}`, '');
    if (schema.description) out.push(String(schema.description), '');
    out.push(...fieldTable(schema), '');
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}
