import type { TSchema } from '@sinclair/typebox';
import type { Operation } from './operation';
import { SHARED_SCHEMAS } from './schemas';

export interface DocumentOptions {
  version: string;
  taskTypes: readonly string[];
  /** Whether the routes need bearer tokens (`api.auth: tokens`). */
  auth: boolean;
}

/** `$ref: 'Task'` (how the schemas name each other) as OpenAPI places it. */
function placeRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(placeRefs);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '$id') continue;
    out[k] = k === '$ref' && typeof v === 'string' && !v.startsWith('#') ? `#/components/schemas/${v}` : placeRefs(v);
  }
  return out;
}

const schemaOf = (s: TSchema): unknown => placeRefs(JSON.parse(JSON.stringify(s)));

function parameters(op: Operation, taskTypes: readonly string[]): unknown[] {
  const out: unknown[] = [];
  for (const [name, schema] of Object.entries(op.params ?? {})) {
    // The configured task types are the only ones with routes.
    const s = name === 'type' ? { type: 'string', enum: [...taskTypes] } : schemaOf(schema);
    out.push({ name, in: 'path', required: true, schema: s });
  }
  for (const [name, schema] of Object.entries(op.headers ?? {})) out.push({ name, in: 'header', required: false, schema: schemaOf(schema) });
  for (const [name, schema] of Object.entries(op.query?.properties ?? {})) {
    out.push({ name, in: 'query', required: false, schema: schemaOf(schema as TSchema), ...((schema as TSchema).description ? { description: (schema as TSchema).description } : {}) });
  }
  return out;
}

function operationObject(op: Operation, options: DocumentOptions): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, a] of Object.entries(op.answers)) {
    const content: Record<string, unknown> = {};
    if (a.schema) content[a.contentType ?? 'application/json'] = { schema: schemaOf(a.schema) };
    if (a.eventStream) content['text/event-stream'] = { schema: { type: 'string', description: 'server-sent events: id (the event id), event (its kind), data (the event as JSON)' } };
    const headers = Object.fromEntries(Object.entries(a.headers ?? {}).map(([name, h]) => [name, { description: h.description, schema: schemaOf(h.schema) }]));
    responses[status] = { description: a.description, ...(Object.keys(content).length ? { content } : {}), ...(a.headers ? { headers } : {}) };
  }
  const secured = options.auth && op.scope !== null;
  if (secured) {
    responses['401'] = { description: 'no valid bearer token', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    responses['403'] = { description: 'the token lacks the scope', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    responses['429'] = {
      description: 'too_many_requests: too many failed token checks from this address or for this token key (api.auth_address_failures, api.auth_key_failures); nothing was checked',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      headers: { 'Retry-After': { description: 'seconds until the failures are forgotten', schema: { type: 'integer', minimum: 1 } } },
    };
  }
  const scope = op.scope === null ? null : typeof op.scope === 'function' ? op.scope({ type: '{type}' }) : op.scope;
  return {
    operationId: op.id,
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    tags: [op.tag],
    parameters: parameters(op, options.taskTypes),
    ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(op.body) } } } } : {}),
    responses,
    ...(scope ? { 'x-scope': scope } : {}),
    security: secured ? [{ bearer: [] }] : [],
  };
}

/** The OpenAPI 3.1 document of the routes, made from their declarations. */
export function openApiDocument(operations: readonly Operation[], options: DocumentOptions): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const path = op.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    (paths[path] ??= {})[op.method] = operationObject(op, options);
  }
  const schemas: Record<string, unknown> = {};
  for (const s of SHARED_SCHEMAS) schemas[String(s.$id)] = schemaOf(s);
  return {
    openapi: '3.1.0',
    info: {
      title: 'tasker',
      version: options.version,
      description: 'Publish/subscribe fan-out task broadcaster: a task POSTed to /{type} is sent to every expected endpoint, whose responses are collected and aggregated.',
    },
    paths,
    components: {
      schemas,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token from `npm run token -- create NAME --scope ...`; each operation\'s x-scope names the scope it needs' } },
    },
  };
}
