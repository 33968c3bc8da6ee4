import type Router from '@koa/router';
import type { Static, TObject, TSchema } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv/dist/2020';
import type { Context } from 'koa';
import { InvalidRequestError } from '../lib/errors';
import { createAjv, describeFailure, ERROR_KEYWORD } from '../lib/validation';
import type { AccessGuard, Scope } from './auth';
import { readJsonBody } from './body';
import { parseNumericQuery, queryParameterError } from './query';

/**
 * A route of the API with everything known about it: who may call it, what it takes and what it answers.
 * `ApiRoutes.add` mounts it with its checks (scope, query, body) before the handler runs, and the
 * OpenAPI document is made from the same declarations, so the two cannot drift apart.
 */
export interface Answer {
  description: string;
  schema?: TSchema;
  /** Also answered as server-sent events when the client accepts text/event-stream. */
  eventStream?: boolean;
  /** The media type, when not JSON. */
  contentType?: string;
  /** Response headers the answer carries. */
  headers?: Record<string, { description: string; schema: TSchema }>;
}

export interface Operation<Q extends TObject = TObject, B extends TSchema | undefined = TSchema | undefined> {
  id: string;
  method: 'get' | 'post' | 'patch' | 'delete';
  /** koa-router's path: `/:type/:identifier`. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  /** The scope a caller's token needs (from the path's parameters); `null`: no token needed. */
  scope: Scope | ((params: Record<string, string>) => Scope) | null;
  /** The path's parameters, for the document (a wrong one answers 404, never 400). */
  params?: Record<string, TSchema>;
  headers?: Record<string, TSchema>;
  query?: Q;
  body?: B;
  answers: Record<number, Answer>;
}

export interface Input<Q extends TObject, B extends TSchema | undefined> {
  query: Static<Q>;
  body: B extends TSchema ? Static<B> : undefined;
}

export type Handler<Q extends TObject, B extends TSchema | undefined> = (ctx: Context, input: Input<Q, B>) => Promise<void>;

// Query values arrive as strings: `limit=5` must pass as the integer the schema declares.
const queryAjv = createAjv({ coerceTypes: true, useDefaults: true });
const bodyAjv = createAjv();

export class ApiRoutes {
  readonly operations: Operation[] = [];

  constructor(private readonly router: Router, private readonly guard: AccessGuard, private readonly bodyLimit: number) {}

  add<Q extends TObject, B extends TSchema | undefined>(op: Operation<Q, B>, handler: Handler<Q, B>): void {
    this.operations.push(op as unknown as Operation);
    const checkQuery = queryChecker(op.query);
    const checkBody = op.body ? bodyChecker(op.body) : null;
    this.router[op.method](op.id, op.path, async (ctx) => {
      if (op.scope !== null) await this.guard.require(ctx, typeof op.scope === 'function' ? op.scope(ctx.params) : op.scope);
      const query = checkQuery(ctx.query as Record<string, string | string[] | undefined>);
      const body = checkBody ? checkBody(await readJsonBody(ctx, this.bodyLimit)) : undefined;
      await handler(ctx, { query, body } as Input<Q, B>);
    });
  }
}

function queryChecker<Q extends TObject>(schema: Q | undefined): (q: Record<string, string | string[] | undefined>) => Static<Q> {
  const names = schema ? Object.keys(schema.properties) : [];
  const validate = queryAjv.compile(schema ?? { type: 'object', additionalProperties: false }) as ValidateFunction<Static<Q>>;
  return (raw) => {
    const q: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(raw)) {
      if (!names.includes(name)) queryParameterError(name, `unknown; this route takes ${names.length ? names.join(', ') : 'none'}`);
      if (Array.isArray(value)) queryParameterError(name, 'given more than once');
      q[name] = numericValue(schema?.properties[name] as TSchema | undefined, name, value as string | undefined);
    }
    if (!validate(q)) {
      const f = describeFailure(validate.errors);
      queryParameterError(f.path, f.message);
    }
    return q as Static<Q>;
  };
}

/** A numeric parameter parsed strictly before the schema sees it, so that every route refuses 1e400 and 0x10 alike. */
function numericValue(prop: TSchema | undefined, name: string, value: string | undefined): unknown {
  const type = (prop as { type?: unknown } | undefined)?.type;
  if (value === undefined || (type !== 'integer' && type !== 'number')) return value;
  const wording = (prop as Record<string, unknown>)[ERROR_KEYWORD];
  return parseNumericQuery(name, value, type === 'integer', typeof wording === 'string' ? wording : undefined);
}

/** A request body's check: the value typed, or a 400 naming the field. */
export function bodyChecker<B extends TSchema>(schema: B): (body: unknown) => Static<B> {
  const validate = bodyAjv.compile(schema) as ValidateFunction<Static<B>>;
  const fields = (schema as unknown as { properties?: Record<string, unknown> }).properties;
  return (body) => {
    if (validate(body)) return body;
    const f = describeFailure(validate.errors);
    if (f.unknown && fields) throw new InvalidRequestError(`unknown field '${f.path}'; expected ${Object.keys(fields).join(', ')}`);
    throw new InvalidRequestError(`${f.path || 'body'} ${f.message}`);
  };
}
