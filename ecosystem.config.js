// pm2: `npx pm2 start ecosystem.config.js` starts the API and every endpoint manager listed in
// `manager.endpoints` of the mode (TASKER_MODE, default development). Needs `npm run build` first
// (npm ci/install does it). kill_timeout leaves each process its graceful shutdown plus a margin: the
// API waits up to api.shutdown_timeout for its HTTP requests, then as long for the response events and
// state requests in hand; a manager waits up to manager.shutdown_timeout for its running handlers.
const { loadConfig } = require('./dist/config/loader');

const mode = process.env.TASKER_MODE || 'development';
const config = loadConfig({ mode });
const MARGIN_MS = 5000;

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

// The in-process broker joins API and managers only inside one process.
module.exports = config.manager.transport === 'in-process' ? { apps: [allInOne] } : {
  apps: [
    {
      ...common,
      name: 'tasker-api',
      script: 'dist/scripts/api.js',
      // Cluster mode: `pm2 reload tasker-api` starts the new process and waits for its ready message
      // before stopping the old one, so no request is refused. `pm2 scale tasker-api N` adds instances.
      exec_mode: 'cluster',
      instances: 1,
      args: ['--mode', mode],
      kill_timeout: 2 * config.api.shutdown_timeout * 1000 + MARGIN_MS,
    },
    ...config.manager.endpoints.map((ep) => ({
      ...common,
      name: `tasker-manager-${ep.name}`,
      script: 'dist/scripts/manager.js',
      args: ['--mode', mode, '--endpoint', ep.name, ...ep.task_types.flatMap((t) => ['--tasktype', t])],
      kill_timeout: config.manager.shutdown_timeout * 1000 + MARGIN_MS,
    })),
  ],
};
