import { InvalidRequestError } from '../../lib/errors';

/**
 * A URL events may be POSTed to (a subscription's `url`, a task's `notify`), in its normal form: absolute,
 * `https://` (`http://` too with api.webhooks.allow_http), without user name, password or fragment. A bad one
 * is a 400 naming `field`. Where it resolves to is checked at each delivery (see post.ts).
 */
export function checkWebhookUrl(raw: string, allowHttp: boolean, field: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidRequestError(`${field}: must be an absolute URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowHttp)) {
    throw new InvalidRequestError(`${field}: must be https://${allowHttp ? ' or http://' : ' (http:// only with api.webhooks.allow_http)'}`);
  }
  if (url.username !== '' || url.password !== '') throw new InvalidRequestError(`${field}: must not carry a user name or password`);
  if (url.hash !== '') throw new InvalidRequestError(`${field}: must not have a fragment`);
  return url.toString();
}
