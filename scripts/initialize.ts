import { projectRoot } from '../config/loader';
import { createDataSource, openDatabase } from '../manager/database';
import { createDatabase, RabbitAdmin, resetTables } from '../manager/provision';
import { main } from './main';

/**
 * `npm run initialize -- --mode M [--database] [--rabbitmq]`: resets the tables and/or the RabbitMQ
 * vhost, user and permissions; both when neither flag is given. Destroys the mode's data.
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
  if (values.rabbitmq || both) {
    await new RabbitAdmin(config.rabbitmq).resetVhost(config.manager.message_queue);
    logger.info('rabbitmq vhost, user and permissions reset', { vhost: config.manager.message_queue.virtual_host });
  }
});
