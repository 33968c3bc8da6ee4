import type { Config, MessageQueueConfig } from '../config/schema';
import type { Topology } from '../protocol/topology';

/** The RabbitMQ management HTTP API, as the `rabbitmq.*` superuser. */
export class RabbitAdmin {
  constructor(private readonly admin: Config['rabbitmq']) {}

  /** One call; an answer of 400 or above is an error unless `accept` lists it (DELETE accepts 404). */
  async request(method: string, path: string, body?: unknown, accept: number[] = []): Promise<{ status: number; json: unknown }> {
    const auth = Buffer.from(`${this.admin.username}:${this.admin.password}`).toString('base64');
    let res: Response;
    try {
      res = await fetch(`${this.admin.apiurl.replace(/\/$/, '')}${path}`, {
        method,
        headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new Error(`RabbitMQ management API at ${this.admin.apiurl} unreachable; is rabbitmq_management enabled?`, { cause: err });
    }
    const text = await res.text();
    if (res.status >= 400 && !accept.includes(res.status) && !(method === 'DELETE' && res.status === 404)) {
      throw new Error(`RabbitMQ management API: ${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    }
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  /** Deletes and recreates the vhost, then creates the application user and its permissions on it. */
  async resetVhost(mq: MessageQueueConfig): Promise<void> {
    const vhost = encodeURIComponent(mq.virtual_host);
    await this.request('DELETE', `/vhosts/${vhost}`);
    await this.request('PUT', `/vhosts/${vhost}`, {});
    const user = encodeURIComponent(mq.username);
    if (mq.username !== this.admin.username) await this.request('PUT', `/users/${user}`, { password: mq.password, tags: '' });
    await this.request('PUT', `/permissions/${vhost}/${user}`, { configure: '.*', write: '.*', read: '.*' });
  }

  /**
   * Sets tasker's policies, replacing older versions of them: `<prefix>.dead-letter-exchange` (refused
   * messages of the endpoint, responses and state queues go to the dead-letter exchange) and
   * `<prefix>.dead-letter-bounds` (the dead-letter queue's bounds). No queue matches both.
   */
  async setPolicies(mq: MessageQueueConfig, topology: Topology): Promise<void> {
    const vhost = encodeURIComponent(mq.virtual_host);
    await this.request('PUT', `/policies/${vhost}/${encodeURIComponent(topology.deadLetterExchangePolicyName)}`, topology.deadLetterExchangePolicy);
    await this.request('PUT', `/policies/${vhost}/${encodeURIComponent(topology.deadLetterBoundsPolicyName)}`, topology.deadLetterBoundsPolicy);
  }

  /** The vhost's queues and the messages they hold, or null if the vhost does not exist. */
  async vhostContents(mq: MessageQueueConfig): Promise<{ queues: number; messages: number } | null> {
    const vhost = encodeURIComponent(mq.virtual_host);
    if ((await this.request('GET', `/vhosts/${vhost}`, undefined, [404])).status === 404) return null;
    const { json } = await this.request('GET', `/queues/${vhost}?columns=name,messages`);
    const queues = Array.isArray(json) ? (json as { messages?: number }[]) : [];
    return { queues: queues.length, messages: queues.reduce((n, q) => n + (q.messages ?? 0), 0) };
  }

  /** Deletes the vhost and (unless it is the superuser) the application user. */
  async deleteVhost(mq: MessageQueueConfig): Promise<void> {
    await this.request('DELETE', `/vhosts/${encodeURIComponent(mq.virtual_host)}`);
    if (mq.username !== this.admin.username) await this.request('DELETE', `/users/${encodeURIComponent(mq.username)}`);
  }
}

/** The user tag that marks a RabbitMQ user as an endpoint's identity. */
export const ENDPOINT_USER_TAG = 'tasker-endpoint';

export interface EndpointUser {
  name: string;
  /** Open AMQP connections of the user on the vhost. */
  connections: number;
}

function tagsOf(user: unknown): string[] {
  const tags = (user as { tags?: unknown } | null)?.tags;
  if (Array.isArray(tags)) return tags.map(String);
  return typeof tags === 'string' && tags !== '' ? tags.split(',') : [];
}

/** The RabbitMQ users of endpoints (`npm run endpoint`): one per endpoint, allowed only what that endpoint needs. */
export class EndpointUsers {
  constructor(private readonly admin: RabbitAdmin, private readonly adminUser: string, private readonly mq: MessageQueueConfig, private readonly topology: Topology) {}

  private vhost(): string {
    return encodeURIComponent(this.mq.virtual_host);
  }

  private async existing(name: string): Promise<unknown> {
    const res = await this.admin.request('GET', `/users/${encodeURIComponent(name)}`, undefined, [404]);
    return res.status === 404 ? null : res.json;
  }

  /** Creates the user of endpoint `name` (or gives an existing endpoint user this password) with its permissions on the vhost. */
  async add(name: string, password: string): Promise<void> {
    if (name === this.mq.username || name === this.adminUser) {
      throw new Error(`'${name}' is the RabbitMQ user of the server side or of the administrator, not an endpoint's`);
    }
    const user = await this.existing(name);
    if (user !== null && !tagsOf(user).includes(ENDPOINT_USER_TAG)) {
      throw new Error(`a RabbitMQ user '${name}' exists and is not an endpoint user (tag ${ENDPOINT_USER_TAG}); not changing it`);
    }
    await this.admin.request('PUT', `/users/${encodeURIComponent(name)}`, { password, tags: ENDPOINT_USER_TAG });
    await this.admin.request('PUT', `/permissions/${this.vhost()}/${encodeURIComponent(name)}`, this.topology.endpointPermissions(name));
  }

  /** Deletes the user of endpoint `name` (RabbitMQ closes its connections); its queues stay. */
  async remove(name: string): Promise<boolean> {
    const user = await this.existing(name);
    if (user === null) return false;
    if (!tagsOf(user).includes(ENDPOINT_USER_TAG)) throw new Error(`'${name}' is not an endpoint user (tag ${ENDPOINT_USER_TAG}); not deleting it`);
    await this.admin.request('DELETE', `/users/${encodeURIComponent(name)}`);
    return true;
  }

  /**
   * Gives every endpoint user with permissions on the vhost this version's permissions (what `add` gives),
   * its password unchanged; answers their names. RabbitMQ may keep a check it cached for as long as the
   * channel that made it: a connection opened before keeps what it was allowed until it closes.
   */
  async updatePermissions(): Promise<string[]> {
    const names = (await this.list()).map((u) => u.name);
    for (const name of names) {
      await this.admin.request('PUT', `/permissions/${this.vhost()}/${encodeURIComponent(name)}`, this.topology.endpointPermissions(name));
    }
    return names;
  }

  /**
   * Deletes the endpoint users of this vhost that have permissions on no other (`initialize --teardown`);
   * answers their names. A user also allowed on another vhost serves something else too: it stays.
   */
  async removeAll(): Promise<string[]> {
    const removed: string[] = [];
    for (const { name } of await this.list()) {
      const { json } = await this.admin.request('GET', `/users/${encodeURIComponent(name)}/permissions`);
      if ((json as { vhost: string }[]).some((p) => p.vhost !== this.mq.virtual_host)) continue;
      await this.admin.request('DELETE', `/users/${encodeURIComponent(name)}`, undefined, [404]);
      removed.push(name);
    }
    return removed;
  }

  /** Endpoint users with permissions on the vhost, with their open connections. */
  async list(): Promise<EndpointUser[]> {
    const [users, permissions, connections] = await Promise.all([
      this.admin.request('GET', '/users'),
      this.admin.request('GET', `/vhosts/${this.vhost()}/permissions`),
      this.admin.request('GET', `/vhosts/${this.vhost()}/connections`),
    ]);
    const endpointUsers = new Set((users.json as unknown[]).filter((u) => tagsOf(u).includes(ENDPOINT_USER_TAG)).map((u) => String((u as { name: unknown }).name)));
    const counts = new Map<string, number>();
    for (const c of connections.json as { user?: string }[]) counts.set(String(c.user), (counts.get(String(c.user)) ?? 0) + 1);
    return (permissions.json as { user: string }[]).map((p) => p.user).filter((u) => endpointUsers.has(u)).sort()
      .map((name) => ({ name, connections: counts.get(name) ?? 0 }));
  }
}
