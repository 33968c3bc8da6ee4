import { createDataSource, openDatabase } from '../api/storage/database';
import { createDatabase, resetTables } from '../api/storage/provision';
import { RabbitAdmin } from '../api/rabbit-admin';
import { projectRoot } from '../config/loader';
import { Connections, topologyOf } from './compose';
import { main } from './main';

/**
 * `npm run initialize -- --mode M [--database] [--rabbitmq]`: resets the tables and/or the RabbitMQ
 * vhost, its application user, permissions, exchanges and server queues; both when neither flag is
 * given. Destroys the mode's data (and the endpoint users' permissions on the vhost).
 */
main('initialize', {
  database: { type: 'boolean' },
  rabbitmq: { type: 'boolean' },
}, async ({ config, logger, values }) => {
  const both = !values.database && !values.rabbitmq;
  if (values.database || both) {
    if (await createDatabase(config.manager.db)) logger.info('database and user present');
    const ds = await openDatabase(() => createDataSource(config.manager.db, projectRoot()), logger);
    try {
      await resetTables(ds);
    } finally {
      await ds.destroy();
    }
    logger.info('tables reset');
  }
  if ((values.rabbitmq || both) && config.manager.transport === 'rabbitmq') {
    const admin = new RabbitAdmin(config.rabbitmq);
    await admin.resetVhost(config.manager.message_queue);
    await admin.boundDeadLetters(config.manager.message_queue, topologyOf(config));
    // The exchanges exist from now on, so endpoint managers may start before the API.
    const transport = new Connections(config, logger).server('initialize');
    try {
      await transport.start();
      if (!transport.connected) throw new Error('could not connect to RabbitMQ to declare the exchanges and queues');
    } finally {
      await transport.close();
    }
    logger.info({ vhost: config.manager.message_queue.virtual_host }, 'rabbitmq vhost, user, permissions, exchanges and queues reset');
  }
});
