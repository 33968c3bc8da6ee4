import Ajv2020, { ErrorObject, Options } from 'ajv/dist/2020';

/**
 * JSON Schema validation shared by the configuration, the HTTP API and the wire format: one Ajv setup,
 * and one way to turn its first error into a sentence that names the key, field or parameter.
 */

/** A schema's own wording for a failure, used instead of Ajv's (e.g. what a pattern means). */
export const ERROR_KEYWORD = 'x-error';

export function createAjv(options: Options = {}): Ajv2020 {
  // verbose: errors carry their schema, so that the message can use its bounds and its x-error.
  const ajv = new Ajv2020({ allErrors: false, strict: true, verbose: true, ...options });
  ajv.addKeyword({ keyword: ERROR_KEYWORD, schemaType: 'string' });
  ajv.addKeyword({ keyword: 'example' });
  return ajv;
}

/** How a failure's location is written: `api.port` and `task_types[0]`. */
export function dottedPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

const TYPE_WORDS: Record<string, string> = {
  string: 'must be a string', number: 'must be a number', integer: 'must be an integer', boolean: 'must be true or false',
  array: 'must be a list', object: 'must be a mapping', null: 'must be null',
};

export interface Failure {
  /** The dotted path of what failed (empty for the whole value). */
  path: string;
  /** What is wrong with it. */
  message: string;
  /** Whether it is a key or field that the schema does not have. */
  unknown: boolean;
}

/** The first error of a failed validation, as a path and a sentence. */
export function describeFailure(errors: ErrorObject[] | null | undefined): Failure {
  // A union's own wording says more than the first of its branches' failures.
  const e = errors?.find((x) => x.keyword === 'anyOf' && typeof x.parentSchema?.[ERROR_KEYWORD] === 'string') ?? errors?.[0];
  if (!e) return { path: '', message: 'is invalid', unknown: false };
  const schema = (e.parentSchema ?? {}) as Record<string, unknown>;
  const own = schema[ERROR_KEYWORD];
  const at = dottedPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: dottedPath(e.instancePath, String(e.params.additionalProperty)), message: 'unknown key', unknown: true };
    case 'required':
      return { path: dottedPath(e.instancePath, String(e.params.missingProperty)), message: 'is required', unknown: false };
    case 'type':
      return { path: at, message: typeof own === 'string' ? own : TYPE_WORDS[String(e.params.type)] ?? `must be ${String(e.params.type)}`, unknown: false };
    case 'enum':
      return { path: at, message: `must be one of ${(schema.enum as unknown[]).join(', ')}`, unknown: false };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
      return { path: at, message: typeof own === 'string' ? own : bounds(schema), unknown: false };
    case 'uniqueItems':
      return { path: at, message: `lists ${JSON.stringify((e.data as unknown[])[Number(e.params.j)])} twice`, unknown: false };
    case 'maxItems':
      return { path: at, message: `lists more than ${String(e.params.limit)} items`, unknown: false };
    default:
      return { path: at, message: typeof own === 'string' ? own : e.message ?? 'is invalid', unknown: false };
  }
}

function bounds(schema: Record<string, unknown>): string {
  const min = schema.minimum ?? schema.exclusiveMinimum;
  const above = schema.exclusiveMinimum !== undefined ? 'above' : 'from';
  return schema.maximum === undefined ? `must be at least ${String(min)}` : `must be a number ${above} ${String(min)} to ${String(schema.maximum)}`;
}
