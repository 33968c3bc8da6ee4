// pm2: `npx pm2 start ecosystem.config.js` starts what this host's role needs, in the mode TASKER_MODE
// (default development). TASKER_ROLE, or else from the mode's configuration:
//   server    the API only: the mode has a database, and every endpoint has a RabbitMQ user of its own
//             (api.endpoint_identity: per_endpoint_user), so endpoints run on their own hosts;
//   endpoint  the endpoint managers of manager.endpoints only (TASKER_ENDPOINT in production): no database;
//   all       both, on one host: a database and one RabbitMQ user shared by the API and the managers.
// Needs `npm run build` first (npm ci/install does it). kill_timeout leaves each process its graceful
// shutdown plus a margin: the API waits up to api.shutdown_timeout for its HTTP requests, then as long for
// the response events and state requests in hand; a manager waits up to manager.shutdown_timeout for its
// running handlers.
const { loadConfig } = require('./dist/config/loader');

const mode = process.env.TASKER_MODE || 'development';
const config = loadConfig({ mode });
const MARGIN_MS = 5000;
const ROLES = ['server', 'endpoint', 'all'];

function roleOf() {
  const given = process.env.TASKER_ROLE;
  if (given !== undefined && given !== '') {
    if (!ROLES.includes(given)) throw new Error(`TASKER_ROLE must be one of ${ROLES.join(', ')}; got '${given}'`);
    if (given !== 'endpoint' && config.manager.db.uri === '') throw new Error(`TASKER_ROLE=${given} runs the API, which needs manager.db.uri (TASKER_DB_URI in production)`);
    return given;
  }
  if (config.manager.db.uri === '') return 'endpoint';
  return config.api.endpoint_identity === 'per_endpoint_user' ? 'server' : 'all';
}
const role = roleOf();

const common = {
  cwd: __dirname,
  exec_mode: 'fork',
  wait_ready: true,
  listen_timeout: 60000,
  env: { TASKER_MODE: mode },
  autorestart: true,
  exp_backoff_restart_delay: 200,
};

const allInOne = {
  ...common,
  name: 'tasker',
  script: 'dist/scripts/start.js',
  args: ['--mode', mode],
  kill_timeout: (2 * config.api.shutdown_timeout + config.manager.shutdown_timeout) * 1000 + MARGIN_MS,
};

const api = {
  ...common,
  name: 'tasker-api',
  script: 'dist/scripts/api.js',
  // Cluster mode: `pm2 reload tasker-api` starts the new process and waits for its ready message
  // before stopping the old one, so no request is refused. `pm2 scale tasker-api N` adds instances.
  exec_mode: 'cluster',
  instances: 1,
  args: ['--mode', mode],
  kill_timeout: 2 * config.api.shutdown_timeout * 1000 + MARGIN_MS,
};

const managers = config.manager.endpoints.map((ep) => ({
  ...common,
  name: `tasker-manager-${ep.name}`,
  script: 'dist/scripts/manager.js',
  args: ['--mode', mode, '--endpoint', ep.name, ...ep.task_types.flatMap((t) => ['--tasktype', t])],
  kill_timeout: config.manager.shutdown_timeout * 1000 + MARGIN_MS,
}));

// The in-process broker joins API and managers only inside one process.
module.exports = {
  apps: config.manager.transport === 'in-process' ? [allInOne]
    : role === 'server' ? [api] : role === 'endpoint' ? managers : [api, ...managers],
};
