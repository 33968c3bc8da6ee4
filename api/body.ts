import type { Context } from 'koa';
import getRawBody from 'raw-body';
import { InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../lib/errors';

/**
 * Reads a JSON request body. The media type is checked first and the size limit is enforced while
 * reading (and up front from Content-Length), so an oversized body is refused before anything is stored.
 */
export async function readJsonBody(ctx: Context, limit: number): Promise<unknown> {
  if (!ctx.is('application/json')) throw new UnsupportedMediaTypeError();
  const declared = Number(ctx.get('content-length') || NaN);
  // The unread rest of a refused body would be taken for the next request: close the connection.
  if (declared > limit) {
    ctx.set('Connection', 'close');
    throw new PayloadTooLargeError(limit);
  }
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit, encoding: ctx.request.charset || 'utf-8' });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') {
      ctx.set('Connection', 'close');
      throw new PayloadTooLargeError(limit);
    }
    throw new InvalidRequestError(`could not read the request body: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidRequestError('request body is not valid JSON');
  }
}
