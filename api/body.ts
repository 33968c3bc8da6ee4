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
  // Refused from its declared length: the rest is read and discarded (Content-Length frames it, so the
  // connection stays usable). Closing instead would reset a client still writing the body, which then
  // sees EPIPE rather than the 413. Node's requestTimeout bounds how long a slow sender can hold this.
  if (declared > limit) {
    ctx.req.resume();
    throw new PayloadTooLargeError(limit);
  }
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit, encoding: ctx.request.charset || 'utf-8' });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') {
      // A chunked body has no declared end to discard up to: close the connection instead.
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
