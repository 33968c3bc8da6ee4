import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import fc from 'fast-check';

/**
 * A property-based run against an OpenAPI document: requests made from the document's own schemas (valid
 * values, values just outside their bounds, and arbitrary junk), each answer checked against the
 * document. Nothing here knows the API: only what the document says.
 */

type Json = Record<string, any>;

export interface GeneratedRequest {
  method: string;
  path: string;
  /** The operation's path template, to find what the document says of it. */
  template: string;
  query: [string, string][];
  headers: Record<string, string>;
  body?: string;
}

export interface Violation {
  request: GeneratedRequest;
  status: number;
  problem: string;
}

/** Values for a schema: mostly valid ones, sometimes something else entirely. */
function valueOf(schema: Json, doc: Json, depth = 0): fc.Arbitrary<unknown> {
  if (schema.$ref) return valueOf(resolve(doc, schema.$ref), doc, depth);
  const junk = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean());
  if (schema.enum) return fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...schema.enum) }, { weight: 1, arbitrary: junk });
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map((s: Json) => valueOf(s, doc, depth + 1)));
  switch (Array.isArray(schema.type) ? schema.type[0] : schema.type) {
    case 'string':
      return fc.oneof(
        { weight: 9, arbitrary: schema.pattern ? fc.stringMatching(new RegExp(schema.pattern)) : fc.string({ maxLength: 80 }) },
        { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
      );
    case 'integer': {
      const min = schema.minimum ?? -1000;
      const max = schema.maximum ?? 1_000_000;
      return fc.oneof({ weight: 9, arbitrary: fc.integer({ min, max }) }, { weight: 1, arbitrary: fc.integer({ min: min - 2, max: max + 2 }) });
    }
    case 'number': {
      const max = schema.maximum ?? 1000;
      return fc.double({ min: (schema.exclusiveMinimum ?? schema.minimum ?? 0) - 1, max: max + 1, noNaN: true });
    }
    case 'boolean':
      return fc.boolean();
    case 'array':
      return depth > 3 ? fc.constant([]) : fc.array(valueOf(schema.items ?? {}, doc, depth + 1), { maxLength: 4 });
    case 'object': {
      if (depth > 3 || !schema.properties) return fc.jsonValue({ maxDepth: 3 });
      const props = Object.fromEntries(Object.entries(schema.properties as Json).map(([k, s]) => [k, valueOf(s, doc, depth + 1)]));
      return fc.record(props, { requiredKeys: schema.required ?? [] });
    }
    default:
      return fc.jsonValue({ maxDepth: 3 });
  }
}

function resolve(doc: Json, ref: string): Json {
  return ref.slice(2).split('/').reduce((node: Json, key) => node[key], doc);
}

/** Query values are strings; an unknown parameter now and then. */
function queryOf(params: Json[], doc: Json, bounds: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<[string, string][]> {
  const entries = params.filter((p) => p.in === 'query').map((p) =>
    fc.option((bounds[p.name] ?? valueOf(p.schema, doc)).map((v): [string, string] => [p.name, typeof v === 'string' ? v : JSON.stringify(v)])));
  const unknown = fc.oneof({ weight: 19, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.string({ maxLength: 8 })) });
  return fc.tuple(fc.tuple(...entries), unknown).map(([known, extra]) => [...known, ...(extra ? [extra] : [])]
    .filter((e): e is [string, string] => e !== null));
}

/** Requests to every operation of the document. `values` supplies path parameters that exist (a known task). */
export function requests(doc: Json, values: Record<string, fc.Arbitrary<string>>, bounds: Record<string, fc.Arbitrary<unknown>> = {}): fc.Arbitrary<GeneratedRequest> {
  const ops: fc.Arbitrary<GeneratedRequest>[] = [];
  for (const [template, item] of Object.entries(doc.paths as Json)) {
    for (const [method, op] of Object.entries(item as Json)) {
      const params: Json[] = op.parameters ?? [];
      const pathParams = params.filter((p) => p.in === 'path');
      const segments = fc.tuple(...pathParams.map((p) => fc.oneof(
        { weight: 4, arbitrary: values[p.name] ?? valueOf(p.schema, doc).map(String).filter((v) => v !== '' && v !== '.' && v !== '..') },
        // `.` and `..` are not segments: a URL resolves them away before any server sees them.
        { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20 }).filter((v) => v !== '.' && v !== '..') },
      )));
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const body = bodySchema
        ? fc.oneof({ weight: 9, arbitrary: valueOf(bodySchema, doc).map((v) => JSON.stringify(v)) }, { weight: 1, arbitrary: fc.string() })
        : fc.constant(undefined);
      ops.push(fc.tuple(segments, queryOf(params, doc, bounds), body).map(([segs, query, b]): GeneratedRequest => {
        let i = 0;
        const path = template.replace(/\{[^}]+\}/g, () => encodeURIComponent(String(segs[i++])));
        return {
          method: method.toUpperCase(), path, template, query,
          headers: b === undefined ? {} : { 'content-type': 'application/json' } as Record<string, string>, ...(b === undefined ? {} : { body: b }),
        };
      }));
    }
  }
  return fc.oneof(...ops);
}

/** Checks answers against the document: a documented status, never a 5xx, a body of the documented schema. */
export class AnswerChecker {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: false });

  constructor(private readonly doc: Json) {
    addFormats(this.ajv);
    for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) this.ajv.addSchema(relink(schema) as object, `component:${name}`);
  }

  check(req: GeneratedRequest, status: number, contentType: string, body: string): string | null {
    if (status >= 500) return `answered ${status}: ${body.slice(0, 200)}`;
    const op = this.doc.paths[req.template]?.[req.method.toLowerCase()];
    const answer = op?.responses?.[String(status)];
    if (!answer) return `status ${status} is not documented for ${req.method} ${req.template}`;
    const schema = answer.content?.['application/json']?.schema;
    if (!schema) return null;
    if (!contentType.startsWith('application/json')) return `answered ${contentType}, documented application/json`;
    const validate = this.ajv.compile(relink(schema) as object);
    const value: unknown = JSON.parse(body);
    if (!validate(value)) return `body does not match the documented schema: ${this.ajv.errorsText(validate.errors)}: ${body.slice(0, 300)}`;
    return null;
  }
}

/** `$ref: '#/components/schemas/X'` as the name the component was added to Ajv under. */
function relink(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(relink);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) =>
    [k, k === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', 'component:') : relink(v)]));
}
