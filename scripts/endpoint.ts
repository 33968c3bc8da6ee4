import { randomBytes } from 'node:crypto';
import { EndpointUsers, RabbitAdmin } from '../api/rabbit-admin';
import { EndpointRegistry } from '../api/storage/endpoint-registry';
import { ENDPOINT_PATTERN } from '../config/schema';
import { openDb, topologyOf } from './compose';
import { main } from './main';

/**
 * `npm run endpoint -- add NAME [--password P]`, `remove NAME`, `list` (with `--mode M`): the RabbitMQ users
 * of endpoints, through the management API as the `rabbitmq.*` administrator. An endpoint user may read
 * only its own queues and publish only its response events; with `api.endpoint_identity:
 * per_endpoint_user` the server side takes an event's endpoint from that user.
 */
main('endpoint', {
  password: { type: 'string' },
}, async ({ config, logger, values, positionals }) => {
  const [command, name, ...rest] = positionals;
  const usage = 'usage: npm run endpoint -- add NAME [--password P] | remove NAME | list  [--mode M]';
  if (rest.length > 0 || !['add', 'remove', 'list'].includes(command ?? '')) throw new Error(usage);
  if (command !== 'list' && (name === undefined || !ENDPOINT_PATTERN.test(name))) {
    throw new Error(`${name === undefined ? 'NAME is required' : `'${name}' is not an endpoint name (${ENDPOINT_PATTERN.source})`}\n${usage}`);
  }
  if (config.manager.transport !== 'rabbitmq') throw new Error(`mode '${config.mode}' has no RabbitMQ: endpoint users exist only there`);
  const mq = config.manager.message_queue;
  const users = new EndpointUsers(new RabbitAdmin(config.rabbitmq), config.rabbitmq.username, mq, topologyOf(config));
  const out = (text: string): boolean => process.stdout.write(`${text}\n`);
  if (command === 'list') {
    const list = await users.list();
    out(list.length === 0 ? `no endpoint users on vhost '${mq.virtual_host}'`
      : list.map((u) => `${u.name}\t${u.connections} connection${u.connections === 1 ? '' : 's'}`).join('\n'));
  } else if (command === 'add') {
    const password = (values.password as string | undefined) ?? randomBytes(18).toString('base64url');
    await users.add(name as string, password);
    const ds = await openDb(config, logger);
    try {
      await new EndpointRegistry(ds).add(name as string);
    } finally {
      await ds.destroy();
    }
    out(`endpoint user '${name}' may now connect to vhost '${mq.virtual_host}'. On that endpoint's host:`);
    out(`  TASKER_MANAGER__MESSAGE_QUEUE__USERNAME=${name} TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD=${password} npm run manager -- --endpoint ${name} --mode ${config.mode}`);
  } else {
    out(await users.remove(name as string) ? `endpoint user '${name}' removed` : `no endpoint user '${name}'`);
  }
}, undefined, { allowPositionals: true });
