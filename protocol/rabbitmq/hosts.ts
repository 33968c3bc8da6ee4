/** One RabbitMQ node to connect to. */
export interface BrokerAddress {
  host: string;
  port: number;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`. */
export const HOST_ENTRY_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** Parses one `hosts` entry; a missing port is `defaultPort`. Throws on an entry the pattern refuses or a port out of range. */
export function parseHostEntry(entry: string, defaultPort: number): BrokerAddress {
  if (!HOST_ENTRY_PATTERN.test(entry)) throw new Error(`'${entry}' is not host or host:port`);
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
  if (!m) throw new Error(`'${entry}' is not host or host:port`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`'${entry}': port must be 1-65535`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

/** The nodes a client may use: `hosts` when it lists any (entries without a port take `port`), else `host:port`. */
export function brokerAddresses(mq: { readonly host: string; readonly port: number; readonly hosts: readonly string[] }): BrokerAddress[] {
  if (mq.hosts.length === 0) return [{ host: mq.host, port: mq.port }];
  return mq.hosts.map((h) => parseHostEntry(h, mq.port));
}

export function formatAddress(a: BrokerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
