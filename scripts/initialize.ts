import { createDataSource, openDatabase } from '../api/storage/database';
import { createDatabase, existingData, resetTables } from '../api/storage/provision';
import { EndpointUsers, RabbitAdmin } from '../api/rabbit-admin';
import { projectRoot } from '../config/loader';
import type { Config } from '../config/schema';
import type { Logger } from '../lib/logger';
import { Connections, topologyOf } from './compose';
import { main } from './main';

/** Declares the exchanges and the server side's queues, so that endpoint managers may start before the API. */
async function declareTopology(config: Config, logger: Logger): Promise<void> {
  const transport = new Connections(config, logger).server('initialize');
  try {
    await transport.start();
    if (!transport.connected) throw new Error('could not connect to RabbitMQ to declare the exchanges and queues');
  } finally {
    await transport.close();
  }
}

/**
 * What a reset would delete, said in words; empty when there is nothing (a first initialize), so that
 * only a reset of something that exists needs `--yes`.
 */
async function wouldDelete(config: Config, database: boolean, rabbitmq: boolean): Promise<string[]> {
  const found: string[] = [];
  if (database) {
    const { tables, tasks } = await existingData(config.manager.db, projectRoot());
    const where = config.manager.db.uri.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
    if (tables.length > 0) found.push(`the tables of ${where} (${tables.length} tables, ${tasks} tasks)`);
  }
  if (rabbitmq) {
    const mq = config.manager.message_queue;
    const vhost = await new RabbitAdmin(config.rabbitmq).vhostContents(mq);
    if (vhost) found.push(`the RabbitMQ vhost '${mq.virtual_host}' (${vhost.queues} queues, ${vhost.messages} messages) with every user's permissions on it`);
  }
  return found;
}

/**
 * `npm run initialize -- --mode M [--database] [--rabbitmq] [--yes]`: resets the tables and/or the RabbitMQ
 * vhost, its application user, permissions, policies, exchanges and server queues; both when neither flag
 * is given. Destroys the mode's data (and the endpoint users' permissions on the vhost): when there is
 * any, it says what and does nothing without `--yes`.
 *
 * `npm run initialize -- --mode M --upgrade`: brings the vhost of an existing installation to this
 * version and deletes nothing: sets the policies, gives the endpoint users this version's permissions,
 * declares the exchanges and server queues.
 */
main('initialize', {
  database: { type: 'boolean' },
  rabbitmq: { type: 'boolean' },
  upgrade: { type: 'boolean' },
  yes: { type: 'boolean' },
  force: { type: 'boolean' },
}, async ({ config, logger, values }) => {
  const rabbitmq = config.manager.transport === 'rabbitmq';
  if (values.upgrade) {
    if (values.database || values.rabbitmq) throw new Error('--upgrade resets nothing: give it without --database and --rabbitmq');
    if (!rabbitmq) throw new Error(`mode '${config.mode}' has no RabbitMQ: there is nothing to upgrade`);
    const mq = config.manager.message_queue;
    const admin = new RabbitAdmin(config.rabbitmq);
    const topology = topologyOf(config);
    await admin.setPolicies(mq, topology);
    const users = await new EndpointUsers(admin, config.rabbitmq.username, mq, topology).updatePermissions();
    await declareTopology(config, logger);
    logger.info({ vhost: mq.virtual_host, endpointUsers: users.length }, 'rabbitmq vhost upgraded: policies, endpoint users\' permissions, exchanges and queues');
    return;
  }
  const both = !values.database && !values.rabbitmq;
  if (!values.yes && !values.force) {
    const found = await wouldDelete(config, Boolean(values.database || both), Boolean((values.rabbitmq || both) && rabbitmq));
    if (found.length > 0) {
      throw new Error(`this would delete ${found.join(' and ')}; nothing was changed. Run it again with --yes to delete them, `
        + `or use --upgrade to bring an installation to this version and keep its data (mode '${config.mode}')`);
    }
  }
  if (values.database || both) {
    if (await createDatabase(config.manager.db, projectRoot())) logger.info('database and user present');
    const ds = await openDatabase(() => createDataSource(config.manager.db, projectRoot()), logger);
    try {
      await resetTables(ds);
    } finally {
      await ds.destroy();
    }
    logger.info('tables reset');
  }
  if ((values.rabbitmq || both) && rabbitmq) {
    const admin = new RabbitAdmin(config.rabbitmq);
    await admin.resetVhost(config.manager.message_queue);
    // Before any queue exists: a queue dead-letters by the policy from its start.
    await admin.setPolicies(config.manager.message_queue, topologyOf(config));
    await declareTopology(config, logger);
    logger.info({ vhost: config.manager.message_queue.virtual_host }, 'rabbitmq vhost, user, permissions, policies, exchanges and queues reset');
  }
});
