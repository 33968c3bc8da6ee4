import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EndpointUsers, RabbitAdmin } from '../api/rabbit-admin';
import { EndpointService } from '../api/endpoint-service';
import { Completion } from '../api/storage/completion';
import type { DataSource } from 'typeorm';
import { EndpointRegistry } from '../api/storage/endpoint-registry';
import { History } from '../api/storage/history';
import { TaskOperations } from '../api/storage/operations';
import { ResponseStore } from '../api/storage/response-store';
import { ResponseRows } from '../api/storage/response-rows';
import { TaskQueries } from '../api/storage/task-queries';
import { TaskStore } from '../api/storage/task-store';
import type { Config } from '../config/schema';
import { NotFoundError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { RemovedEndpoint } from '../api/endpoint-service';
import { ENDPOINT_PATTERN } from '../config/schema';
import { Connections, topologyOf } from './compose';
import { openDb } from './database';
import { endpointEnvFile, endpointHostCommand } from './endpoint-command';
import { main } from './main';

/** The endpoint removed through the database and the broker directly; null when nothing knew it. */
async function removeEndpoint(config: Config, logger: Logger, name: string, force: boolean): Promise<RemovedEndpoint | null> {
  const ds: DataSource = await openDb(config, logger);
  const transport = new Connections(config, logger).server('endpoint');
  try {
    await transport.start();
    if (!transport.connected) throw new Error('could not connect to RabbitMQ to delete the endpoint\'s queues');
    // Nobody waits on this process's notices: the API's waiting clients see the change at their next read.
    const announce = (): void => undefined;
    const history = new History(ds);
    const responseRows = new ResponseRows(ds);
    const operations = new TaskOperations(ds, new Completion(ds, history, announce, responseRows), history, new TaskStore(ds, history, announce, responseRows), announce);
    const service = new EndpointService(new EndpointRegistry(ds), new ResponseStore(ds, responseRows), new TaskQueries(ds, responseRows), 0, 0,
      { operations, transport, taskTypes: config.task_types, log: logger });
    return await service.remove(name, force, 'npm run endpoint');
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  } finally {
    await transport.close();
    await ds.destroy();
  }
}

/**
 * `npm run endpoint -- add NAME [--password P] [--env-out FILE]`, `remove NAME [--force]`, `list` (with `--mode M`): the RabbitMQ users
 * of endpoints, through the management API as the `rabbitmq.*` administrator. An endpoint user may read
 * only its own queues and publish only its response events; with `api.endpoint_identity:
 * per_endpoint_user` the server side takes an event's endpoint from that user. `add` also puts the name
 * in the inventory, so that tasks may list it before the endpoint first registers; `remove` first removes
 * the endpoint as `DELETE /endpoints/<name>` does (open responses cancelled, queues and registry entry
 * deleted).
 */
main('endpoint', {
  password: { type: 'string' },
  'env-out': { type: 'string' },
  force: { type: 'boolean' },
}, async ({ config, logger, values, positionals }) => {
  const [command, name, ...rest] = positionals;
  const usage = 'usage: npm run endpoint -- add NAME [--password P] [--env-out FILE] | remove NAME [--force] | list  [--mode M]';
  if (rest.length > 0 || !['add', 'remove', 'list'].includes(command ?? '')) throw new Error(usage);
  if (command !== 'list' && (name === undefined || !ENDPOINT_PATTERN.test(name))) {
    throw new Error(`${name === undefined ? 'NAME is required' : `'${name}' is not an endpoint name (${ENDPOINT_PATTERN.source})`}\n${usage}`);
  }
  const envFile = values['env-out'] as string | undefined;
  if (envFile !== undefined && command !== 'add') throw new Error(`--env-out goes with add only\n${usage}`);
  if (envFile === '') throw new Error(`--env-out needs a file name\n${usage}`);
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
    // Written first, so that a file that cannot be written leaves no user behind; 0600 from the first byte,
    // as it holds the endpoint's broker password.
    if (envFile !== undefined) {
      writeFileSync(envFile, endpointEnvFile(config, name as string, password), { mode: 0o600, flag: 'w' });
      chmodSync(envFile, 0o600);
    }
    await users.add(name as string, password);
    const ds = await openDb(config, logger);
    try {
      await new EndpointRegistry(ds).add(name as string);
    } finally {
      await ds.destroy();
    }
    out(`endpoint user '${name}' may now connect to vhost '${mq.virtual_host}'. On that endpoint's host (this project installed; the broker's address as this host reaches it):`);
    out(`  ${endpointHostCommand(config, name as string, password)}`);
    if (envFile !== undefined) {
      out(`The same settings, with TASKER_MODE and TASKER_ENDPOINT, are in ${envFile} (mode 0600): on the endpoint's host, \`set -a; . ${path.isAbsolute(envFile) ? envFile : `./${envFile}`}; set +a\` then \`npx pm2 start ecosystem.config.js\`, or systemd's EnvironmentFile=.`);
    }
    out(`With the endpoint package instead (docs/endpoint-host.md): the same variables, and \`tasker-endpoint --config FILE --endpoint ${name}\`, FILE giving task_types and manager.handlers_dir.`);
  } else {
    const removed = await removeEndpoint(config, logger, name as string, values.force === true);
    out(removed ? `endpoint '${name}' removed: ${removed.cancelled} open responses cancelled, its queues deleted` : `no endpoint '${name}' registered`);
    out(await users.remove(name as string) ? `endpoint user '${name}' removed` : `no endpoint user '${name}'`);
  }
}, undefined, { allowPositionals: true });
