import mysql from 'mysql2/promise';
import { parseMysqlUri } from '../../api/storage/provision';
import type { TestCertificates } from './certificates';
import type { RabbitCluster } from './rabbit-cluster';

/** The environment that sends a system process to `cluster`'s first node over AMQPS, with a client certificate. */
export function amqpsEnv(cluster: RabbitCluster, certs: TestCertificates): Record<string, string> {
  return {
    TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: `127.0.0.1:${cluster.nodes[0].amqpsPort}`,
    TASKER_MANAGER__MESSAGE_QUEUE__TLS__ENABLED: 'true',
    TASKER_MANAGER__MESSAGE_QUEUE__TLS__CA: certs.ca,
    TASKER_MANAGER__MESSAGE_QUEUE__TLS__CERT: certs.clientCert,
    TASKER_MANAGER__MESSAGE_QUEUE__TLS__KEY: certs.clientKey,
  };
}

/** The application's database user (of `dbUri`) may connect over TLS only: one that fell back to plain is refused. */
export async function requireSslUser(port: number, dbUri: string): Promise<void> {
  const root = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
  try {
    const { user } = parseMysqlUri(dbUri);
    for (const host of ['%', 'localhost']) await root.query('ALTER USER ?@? REQUIRE SSL', [user, host]);
  } finally {
    await root.end();
  }
}
