import { createDataSource, openDatabase } from '../api/storage/database';
import { createDatabase, existingData, parseMysqlUri, removeDatabase, resetTables } from '../api/storage/provision';
import { EndpointUsers, RabbitAdmin } from '../api/rabbit-admin';
import { projectRoot } from '../config/loader';
import type { Config } from '../config/schema';
import type { Logger } from '../lib/logger';
import { Connections, topologyOf } from './compose';
import { main } from './main';
import { ensureSigningKey } from './signing-key';

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

/** What a teardown would remove, said in words (empty: nothing of the mode exists). */
async function wouldRemove(config: Config): Promise<string[]> {
  const found: string[] = [];
  const { db } = config.manager;
  const { tables, tasks } = await existingData(db, projectRoot());
  if (db.uri.startsWith('sqlite:')) {
    if (tables.length > 0) found.push(`the SQLite file ${db.uri.slice('sqlite:'.length)} (${tables.length} tables, ${tasks} tasks)`);
  } else {
    const t = parseMysqlUri(db.uri);
    found.push(`the database '${t.database}' (${tables.length} tables, ${tasks} tasks) and its user '${t.user}'`);
  }
  if (config.manager.transport === 'rabbitmq') {
    const mq = config.manager.message_queue;
    const admin = new RabbitAdmin(config.rabbitmq);
    const vhost = await admin.vhostContents(mq);
    if (vhost) {
      const endpoints = await new EndpointUsers(admin, config.rabbitmq.username, mq, topologyOf(config)).list();
      found.push(`the RabbitMQ vhost '${mq.virtual_host}' (${vhost.queues} queues, ${vhost.messages} messages)`
        + (mq.username !== config.rabbitmq.username ? `, its user '${mq.username}'` : '')
        + (endpoints.length ? ` and the endpoint users allowed on it only (of ${endpoints.map((u) => u.name).join(', ')})` : ''));
    }
  }
  return found;
}

/** `--teardown`: removes what `initialize` and `npm run endpoint -- add` made for the mode. */
async function teardown(config: Config, logger: Logger, confirmed: boolean): Promise<void> {
  const found = await wouldRemove(config);
  if (!confirmed) {
    throw new Error(`--teardown would remove ${found.length ? found.join(' and ') : 'nothing of the mode (none of it exists)'}; nothing was changed. `
      + `Run it again with --yes to remove it (mode '${config.mode}')`);
  }
  await removeDatabase(config.manager.db, projectRoot());
  logger.info('database removed');
  if (config.manager.transport === 'rabbitmq') {
    const mq = config.manager.message_queue;
    const admin = new RabbitAdmin(config.rabbitmq);
    const endpointUsers = await new EndpointUsers(admin, config.rabbitmq.username, mq, topologyOf(config)).removeAll();
    await admin.deleteVhost(mq);
    logger.info({ vhost: mq.virtual_host, endpointUsers }, 'rabbitmq vhost, its user and its endpoint users removed');
  }
}

/**
 * `npm run initialize -- --mode M --teardown [--yes]`: removes the mode's database (or SQLite file) with its
 * user, its vhost with its application user, and the endpoint users allowed on that vhost only; says what
 * first, and does it only with `--yes`. The signing key file stays (it is a secret the operator keeps).
 *
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
  teardown: { type: 'boolean' },
}, async ({ config, logger, values }) => {
  if (values.teardown) {
    if (values.database || values.rabbitmq || values.upgrade) throw new Error('--teardown removes everything of the mode: give it without --database, --rabbitmq and --upgrade');
    await teardown(config, logger, Boolean(values.yes || values.force));
    return;
  }
  ensureSigningKey(config, logger);
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
}, undefined, { readSigningKey: false });
