import { CliError, EXIT } from './exit-status';

export interface ClientOptions {
  url: string;
  token?: string;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Why fetch could not reach the API, in words (fetch itself only says "fetch failed"). */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused', ENOTFOUND: 'host not found', EAI_AGAIN: 'host not found (DNS)', ECONNRESET: 'connection reset',
    ETIMEDOUT: 'timed out', EHOSTUNREACH: 'host unreachable', ENETUNREACH: 'network unreachable', UND_ERR_SOCKET: 'connection closed',
  };
  if (words[code]) return words[code];
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/**
 * The HTTP API as the CLI uses it: JSON requests with the bearer token, and every failure turned into a
 * CliError whose message is one line a person can act on.
 */
export class ApiClient {
  readonly base: URL;

  constructor(private readonly options: ClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new CliError(`--url: '${options.url}' is not a URL (e.g. http://127.0.0.1:8888)`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new CliError(`--url: '${options.url}' is not an http(s) URL`);
    this.base = base;
  }

  /** The URL of an API path; `segments` are encoded one by one. */
  url(segments: string[], query: RequestOptions['query'] = {}): URL {
    const prefix = this.base.pathname.replace(/\/+$/, '');
    const u = new URL(this.base.href);
    u.pathname = `${prefix}/${segments.map(encodeURIComponent).join('/')}`;
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}), ...extra };
  }

  /** Sends a request; resolves with the response when it is 2xx, otherwise throws a CliError. */
  async send(method: string, segments: string[], o: RequestOptions = {}): Promise<Response> {
    const url = this.url(segments, o.query);
    const headers = this.headers({ accept: 'application/json', ...o.headers });
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body), signal: o.signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new CliError(`cannot reach the API at ${this.base.origin}: ${networkReason(err)}`);
    }
    if (res.ok) return res;
    throw await this.failure(method, url, res);
  }

  async json<T>(method: string, segments: string[], o: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, segments, o);
    try {
      return (await res.json()) as T;
    } catch {
      throw new CliError(`${method} ${this.base.origin}${new URL(res.url).pathname}: the answer is not JSON (is --url the tasker API?)`);
    }
  }

  /** The one line that says why the API refused a request, from its `{"error": {"code", "message"}}`. */
  private async failure(method: string, url: URL, res: Response): Promise<CliError> {
    const text = await res.text().catch(() => '');
    let code = '';
    let message = '';
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? '';
      message = body.error?.message ?? '';
    } catch {
      message = text.replace(/\s+/g, ' ').trim().slice(0, 200);
    }
    const what = `${method} ${url.pathname}${url.search}`;
    const hint = res.status === 401 ? (this.options.token ? ' (the token given was refused)' : ' (give one with --token or TASKER_TOKEN)') : '';
    return new CliError(`${what}: ${res.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}${hint}`, EXIT.ERROR, res.status);
  }
}
