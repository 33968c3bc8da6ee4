import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness';
import { requireServices } from './service-gate';

const run = promisify(execFile);
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const CTL_TIMEOUT_MS = 120_000;

export interface RabbitNodeInfo {
  /** Erlang node name, `tasker-<tag>-<i>@localhost`. */
  name: string;
  amqpPort: number;
  /** AMQPS, for a cluster started with `tls`; 0 otherwise. */
  amqpsPort: number;
  managementPort: number;
  distPort: number;
}

export interface SavedCluster {
  dir: string;
  nodes: RabbitNodeInfo[];
  /** The nodes' VMs and the shells above them. */
  pids: number[];
}

interface RunningNode {
  /** `rabbitmq-server`: a shell that runs the VM as its child and turns SIGTERM into a clean stop. */
  child: ChildProcess;
  exited: Promise<void>;
  /** The Erlang VM's pid, once it runs. */
  vm: number | null;
}

/** The pid of `parent`'s child process running the Erlang VM, if there is one. */
function vmChild(parent: number): number | null {
  try {
    const children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return children.find((c) => {
      try {
        return readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'beam.smp';
      } catch {
        return false;
      }
    }) ?? null;
  } catch {
    return null;
  }
}

/**
 * RabbitMQ nodes of a test's own, clustered: separate `rabbitmq-server` processes on their own ports,
 * with their data, logs, configuration and Erlang cookie under one temporary directory, so that a test
 * may kill, stop or block them without touching the machine's shared broker (they only share its epmd).
 * Each node has the management plugin on its own port, so `initialize` and the harness work against it.
 */
export class RabbitCluster {
  readonly nodes: RabbitNodeInfo[] = [];
  private readonly running = new Map<number, RunningNode>();
  private dir = '';
  private readonly tag: string = randomBytes(3).toString('hex');

  /**
   * `basePort`: fixed ports (AMQP base+i, management base+10000+i, distribution base+20000+i) instead of
   * free ones, for a cluster people start by hand (`npm run cluster:up`).
   */
  /**
   * `openFilesHard`: each node runs with its open-file limit raised to the hard limit (RabbitMQ takes as
   * many connections as that allows: about 830 under the usual soft limit of 1024), for the fleet bench.
   */
  /** `tls`: each node also listens for AMQPS (`amqpsPort`) with this server certificate; a client certificate is checked if given. */
  constructor(readonly size = 3, private readonly options: { basePort?: number; name?: string; openFilesHard?: boolean; tls?: { ca: string; cert: string; key: string } } = {}) {
    if (options.name !== undefined) this.tag = options.name;
  }

  private async ports(i: number): Promise<Omit<RabbitNodeInfo, 'name'>> {
    const base = this.options.basePort;
    const amqpsPort = this.options.tls ? await freePort() : 0;
    if (base === undefined) return { amqpPort: await freePort(), amqpsPort, managementPort: await freePort(), distPort: await freePort() };
    return { amqpPort: base + i, amqpsPort, managementPort: base + 10_000 + i, distPort: base + 20_000 + i };
  }

  /** What `RabbitCluster.stopSaved` needs to stop the nodes from another process. */
  saved(): SavedCluster {
    return { dir: this.dir, nodes: this.nodes, pids: [...this.running.values()].flatMap((n) => [n.vm, n.child.pid].filter((p): p is number => p !== undefined && p !== null)) };
  }

  /** Lets this process exit while the nodes run on (they are stopped with `stopSaved`). */
  detach(): void {
    for (const n of this.running.values()) n.child.unref();
  }

  /** Kills the processes of a cluster saved by another process and deletes its directory. */
  static stopSaved(saved: SavedCluster): void {
    for (const pid of saved.pids) {
      try {
        // Only if it still is one of the cluster's processes, not another that got the pid since.
        if (readFileSync(`/proc/${pid}/environ`, 'utf8').includes(`=${saved.dir}/`)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    rmSync(saved.dir, { recursive: true, force: true });
  }

  /** `127.0.0.1:<port>` of every node, for `manager.message_queue.hosts`. */
  get hosts(): string[] {
    return this.nodes.map((n) => `127.0.0.1:${n.amqpPort}`);
  }

  /**
   * The test mode's environment for this cluster: the first node as `host` and management API (what
   * `initialize` and the harness use), every node in `hosts`.
   */
  testEnv(): NodeJS.ProcessEnv {
    return {
      TASKER_TEST_MQ_HOST: '127.0.0.1',
      TASKER_TEST_MQ_PORT: String(this.nodes[0].amqpPort),
      TASKER_TEST_MQ_API_PORT: String(this.nodes[0].managementPort),
      TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: this.hosts.join(','),
    };
  }

  /** Starts every node and joins the others to the first; resolves once all run as one cluster. */
  async start(): Promise<void> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-rabbit-'));
    const home = path.join(this.dir, 'home');
    mkdirSync(home);
    // A cookie of its own: the shared node's tools cannot reach these nodes, nor these tools the shared node.
    writeFileSync(path.join(home, '.erlang.cookie'), randomBytes(16).toString('hex').toUpperCase());
    chmodSync(path.join(home, '.erlang.cookie'), 0o400);
    writeFileSync(path.join(this.dir, 'enabled_plugins'), '[rabbitmq_management].\n');
    for (let i = 0; i < this.size; i++) {
      const node = { name: `tasker-${this.tag}-${i}@localhost`, ...await this.ports(i) };
      this.nodes.push(node);
      const nodeDir = path.join(this.dir, `n${i}`);
      mkdirSync(path.join(nodeDir, 'log'), { recursive: true });
      writeFileSync(path.join(nodeDir, 'rabbitmq.conf'), [
        `listeners.tcp.1 = 127.0.0.1:${node.amqpPort}`,
        `management.tcp.port = ${node.managementPort}`,
        'management.tcp.ip = 127.0.0.1',
        'log.console = false',
        'log.file.level = info',
        ...this.options.tls ? [
          `listeners.ssl.default = 127.0.0.1:${node.amqpsPort}`,
          `ssl_options.cacertfile = ${this.options.tls.ca}`,
          `ssl_options.certfile = ${this.options.tls.cert}`,
          `ssl_options.keyfile = ${this.options.tls.key}`,
          'ssl_options.verify = verify_peer',
          'ssl_options.fail_if_no_peer_cert = false',
        ] : [],
        '',
      ].join('\n'));
    }
    await Promise.all(this.nodes.map((_n, i) => this.startNode(i)));
    for (let i = 1; i < this.size; i++) {
      await this.ctl(i, ['stop_app']);
      await this.ctl(i, ['join_cluster', this.nodes[0].name]);
      await this.ctl(i, ['start_app']);
      await this.ctl(i, ['await_startup']);
    }
  }

  private nodeEnv(i: number): NodeJS.ProcessEnv {
    const node = this.nodes[i];
    const nodeDir = path.join(this.dir, `n${i}`);
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RABBITMQ_') && !k.startsWith('ERL_')));
    return {
      ...inherited,
      HOME: path.join(this.dir, 'home'),
      // Not /etc/rabbitmq's files, which describe the shared node.
      RABBITMQ_CONF_ENV_FILE: path.join(this.dir, 'rabbitmq-env.conf'),
      RABBITMQ_CONFIG_FILE: path.join(nodeDir, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: path.join(nodeDir, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(this.dir, 'enabled_plugins'),
      RABBITMQ_NODENAME: node.name,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(node.amqpPort),
      RABBITMQ_DIST_PORT: String(node.distPort),
      RABBITMQ_MNESIA_BASE: path.join(nodeDir, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(nodeDir, 'log'),
      RABBITMQ_PID_FILE: path.join(nodeDir, 'pid'),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_CRASH_DUMP: path.join(nodeDir, 'log', 'erl_crash.dump'),
    };
  }

  /** Starts node `i` (again, after a kill or stop: it rejoins the cluster by itself); resolves once it runs. */
  async startNode(i: number): Promise<void> {
    if (this.running.has(i)) throw new Error(`node ${i} is running`);
    const out = openSync(path.join(this.dir, `n${i}`, 'log', 'stdout.log'), 'a');
    // Its own directory as working directory: the VM writes crash dumps (erl_crash.dump, MnesiaCore.*) there.
    const server = path.join(RABBIT_BIN, 'rabbitmq-server');
    const [command, args] = this.options.openFilesHard ? ['/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0"', server]] : [server, []];
    const child = spawn(command, args, { env: this.nodeEnv(i), stdio: ['ignore', out, out], cwd: path.join(this.dir, `n${i}`) });
    closeSync(out);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const node: RunningNode = { child, exited, vm: null };
    this.running.set(i, node);
    void exited.then(() => { if (this.running.get(i)?.child === child) this.running.delete(i); });
    try {
      await this.registered(i, child);
      node.vm = vmChild(child.pid ?? -1);
      if (node.vm === null) throw new Error('no Erlang VM under rabbitmq-server');
      await this.ctl(i, ['await_startup']);
    } catch (err) {
      throw new Error(`node ${this.nodes[i].name} did not start: ${(err as Error).message}\n${this.log(i)}`);
    }
  }

  /** Until epmd lists the node: before that, `await_startup` fails at once rather than waiting. */
  private async registered(i: number, child: ChildProcess): Promise<void> {
    const short = this.nodes[i].name.split('@')[0];
    const deadline = Date.now() + CTL_TIMEOUT_MS;
    for (;;) {
      const { stdout } = await run('epmd', ['-names'], { timeout: 10_000 }).catch(() => ({ stdout: '' }));
      if (stdout.split('\n').some((l) => l.startsWith(`name ${short} at port`))) return;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('the node exited');
      if (Date.now() > deadline) throw new Error('not registered with epmd in time');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** The OS pid of node `i`'s Erlang VM. */
  pid(i: number): number {
    const pid = this.running.get(i)?.vm;
    if (pid === undefined || pid === null) throw new Error(`node ${i} is not running`);
    return pid;
  }

  isRunning(i: number): boolean {
    return this.running.has(i);
  }

  /** SIGKILL: the node vanishes with its connections, as a crashed host would. */
  async kill(i: number): Promise<void> {
    const node = this.running.get(i);
    if (!node) return;
    // The VM itself: killing the shell above it would leave the node running.
    if (node.vm !== null) process.kill(node.vm, 'SIGKILL');
    node.child.kill('SIGKILL');
    await node.exited;
    await this.vmGone(node.vm);
  }

  /** Until the VM's process is gone (the shell above it may end first). */
  private async vmGone(vm: number | null): Promise<void> {
    if (vm === null) return;
    const deadline = Date.now() + 30_000;
    while (existsSync(`/proc/${vm}`) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  /** A clean stop (SIGTERM: the shell stops the VM as `rabbitmqctl stop` would, and waits for it). */
  async stopNode(i: number): Promise<void> {
    const node = this.running.get(i);
    if (!node) return;
    node.child.kill('SIGTERM');
    await node.exited;
    await this.vmGone(node.vm);
  }

  /** `rabbitmqctl -n <node i> ...` with the cluster's cookie; resolves with its output. */
  async ctl(i: number, args: string[]): Promise<string> {
    const { stdout } = await run(path.join(RABBIT_BIN, 'rabbitmqctl'), ['-q', '-n', this.nodes[i].name, ...args],
      { env: this.nodeEnv(i), timeout: CTL_TIMEOUT_MS, cwd: path.join(this.dir, `n${i}`) });
    return stdout;
  }

  /** A running node other than those in `except`, to ask about the cluster. */
  anyRunning(except: number[] = []): number {
    const i = [...this.running.keys()].find((n) => !except.includes(n));
    if (i === undefined) throw new Error('no node of the cluster is running');
    return i;
  }

  /** Index of the node leading each quorum queue of `vhost`, by queue name (asked of a running node). */
  async leaders(vhost: string): Promise<Map<string, number>> {
    const out = await this.ctl(this.anyRunning(), ['list_queues', '-p', vhost, 'name', 'leader', '--formatter', 'json']);
    const rows = JSON.parse(out) as { name: string; leader: string }[];
    return new Map(rows.map((r) => [r.name, this.nodes.findIndex((n) => n.name === r.leader)]));
  }

  /** Names of the nodes that node `i` sees running in its cluster. */
  async runningNodes(i: number): Promise<string[]> {
    const status = JSON.parse(await this.ctl(i, ['cluster_status', '--formatter', 'json'])) as { running_nodes: string[] };
    return status.running_nodes;
  }

  private log(i: number): string {
    try {
      const dir = path.join(this.dir, `n${i}`, 'log');
      return ['stdout.log', `${this.nodes[i].name}.log`].map((f) => {
        try {
          return readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-15).join('\n');
        } catch {
          return '';
        }
      }).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Kills every node this cluster started and deletes its directory. */
  async destroy(): Promise<void> {
    await Promise.all([...this.running.keys()].map((i) => this.kill(i)));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * For a suite that runs its own RabbitMQ nodes: it needs the shared MariaDB and an installed RabbitMQ,
 * not the shared broker.
 */
export async function requireOwnRabbit(ctx: Mocha.Context): Promise<void> {
  const installed = existsSync(path.join(RABBIT_BIN, 'rabbitmq-server')) && existsSync(path.join(RABBIT_BIN, 'rabbitmqctl'));
  await requireServices(ctx, {
    only: (problem) => problem.startsWith('MariaDB'),
    also: installed ? [] : [`RabbitMQ is not installed in ${RABBIT_BIN}`],
  });
}
