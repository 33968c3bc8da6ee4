import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RabbitCluster, SavedCluster } from './rabbit-cluster';

/**
 * `npm run cluster:up` / `npm run cluster:down`: the test's 3-node RabbitMQ cluster on fixed ports
 * (AMQP 5681-5683, management 15681-15683), to try tasker on a cluster by hand. Never the shared node.
 */
const STATE = path.join(os.tmpdir(), 'tasker-rabbit-cluster.json');
const BASE_PORT = 5681;

async function up(): Promise<void> {
  if (existsSync(STATE)) throw new Error(`a cluster is up already (${STATE}); npm run cluster:down first`);
  const cluster = new RabbitCluster(3, { basePort: BASE_PORT, name: 'dev' });
  const started = Date.now();
  try {
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  writeFileSync(STATE, JSON.stringify(cluster.saved()));
  cluster.detach();
  process.stdout.write(`3 RabbitMQ nodes clustered in ${((Date.now() - started) / 1000).toFixed(0)} s: ${cluster.nodes.map((n) => n.name).join(', ')}\n`
    + 'Use them with (then npm run initialize / start as usual):\n'
    + `  export TASKER_MANAGER__MESSAGE_QUEUE__HOSTS=${cluster.hosts.join(',')}\n`
    + '  export TASKER_MANAGER__MESSAGE_QUEUE__QUEUE_TYPE=quorum\n'
    + `  export TASKER_RABBITMQ__APIURL=http://127.0.0.1:${cluster.nodes[0].managementPort}/api\n`
    + 'npm run cluster:down stops them and deletes their data.\n');
}

function down(): void {
  if (!existsSync(STATE)) {
    process.stdout.write('no cluster is up\n');
    return;
  }
  RabbitCluster.stopSaved(JSON.parse(readFileSync(STATE, 'utf8')) as SavedCluster);
  rmSync(STATE);
  process.stdout.write('cluster stopped and deleted\n');
}

const command = process.argv[2];
if (command === 'up') {
  up().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  });
} else if (command === 'down') {
  down();
} else {
  process.stderr.write('usage: rabbit-cluster-cli up|down\n');
  process.exitCode = 2;
}
