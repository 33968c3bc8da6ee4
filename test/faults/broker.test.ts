import assert from 'node:assert/strict';
import { makeCertificates, TestCertificates } from '../support/certificates';
import { freePort, Harness, Proc } from '../support/harness';
import { RabbitCluster, requireOwnRabbit } from '../support/rabbit-cluster';
import { amqpsEnv } from '../support/tls-env';
import { closeAllRabbitConnections, startRabbitApp, stopRabbitApp } from '../support/services';

const QUEUES = ['tasker.worker.console1', 'tasker.worker.console2'];
const ENDPOINTS = ['console1', 'console2'];

/** The broker a run of the suite breaks, and the environment that sends the system's processes to it. */
interface Broker {
  /** For the harness and every process it starts. */
  harnessEnv: NodeJS.ProcessEnv;
  /** For the API and the managers only. */
  processEnv: Record<string, string>;
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
  closeAll(): Promise<void>;
  /** Whether every connection of the system's processes is TLS (null: not asked). */
  allTls?(h: Harness): Promise<string | null>;
  destroy(): Promise<void>;
}

const sharedBroker = (): Broker => ({
  harnessEnv: {}, processEnv: {}, stopApp: stopRabbitApp, startApp: startRabbitApp, closeAll: closeAllRabbitConnections, destroy: async () => undefined,
});

/** A node of the suite's own with an AMQPS listener: the API and managers reach it over TLS with client certificates. */
async function tlsBroker(): Promise<Broker> {
  const certs: TestCertificates = await makeCertificates();
  const cluster = new RabbitCluster(1, { tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } });
  try {
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    certs.remove();
    throw err;
  }
  const managementUp = async (): Promise<void> => {
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      const ok = await fetch(`http://127.0.0.1:${cluster.nodes[0].managementPort}/api/overview`, {
        headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
      }).then((r) => r.ok, () => false);
      if (ok) return;
    }
    throw new Error('the node\'s management API did not come back');
  };
  return {
    harnessEnv: cluster.testEnv(),
    processEnv: amqpsEnv(cluster, certs),
    stopApp: async () => { await cluster.ctl(0, ['stop_app']); },
    startApp: async () => {
      await cluster.ctl(0, ['start_app']);
      await cluster.ctl(0, ['await_startup']);
      await managementUp();
    },
    closeAll: async () => { await cluster.ctl(0, ['close_all_connections', 'closed by the fault tests']); },
    allTls: async (h) => {
      type Conn = { ssl?: boolean; client_properties?: { connection_name?: string } };
      const vhost = encodeURIComponent(h.config.manager.message_queue.virtual_host);
      const { json } = await h.admin().request('GET', `/vhosts/${vhost}/connections?columns=ssl,client_properties`);
      const mine = ((Array.isArray(json) ? json : []) as Conn[]).filter((c) => String(c.client_properties?.connection_name).startsWith('tasker'));
      const plain = mine.filter((c) => c.ssl !== true).map((c) => String(c.client_properties?.connection_name));
      return mine.length === 0 ? 'no connection of the system\'s processes listed' : plain.length ? `plain: ${plain.join(', ')}` : null;
    },
    destroy: async () => {
      await cluster.destroy();
      certs.remove();
    },
  };
}

/** RabbitMQ outages with a real broker: stop_app/start_app and forced connection closes. */
function brokerFaults(title: string, make: () => Promise<Broker>, own: boolean): void {
  describe(title, function () {
    let broker: Broker;
    let h: Harness;
    const accepted: { type: string; identifier: string }[] = [];
    let managers: Proc[] = [];
    let secondPort = 0;

    before(async function () {
      if (own) await requireOwnRabbit(this);
      broker = await make();
      h = new Harness({ waitTimeout: 60, env: broker.harnessEnv });
      await h.setup(own ? undefined : this);
      await h.startApi(undefined, broker.processEnv);
      secondPort = await freePort();
      await h.startApi(secondPort, broker.processEnv);
      managers = await startManagers();
    });

    after(async function () {
      await h?.teardown();
      await broker?.destroy();
    });

    const startManagers = (): Promise<Proc[]> => Promise.all(ENDPOINTS.map((e) => h.startManager(e, ['worker'], broker.processEnv)));

    async function post(identifier: string, port = h.port): Promise<any> {
      const res = await h.post('worker', { identifier, payload: { sleep: 0 }, endpoints: ENDPOINTS }, {}, port);
      assert.ok(res.status === 201, `POST ${identifier}: ${res.status} ${JSON.stringify(res.json)}`);
      accepted.push({ type: 'worker', identifier });
      return res.json;
    }

    /** How often each manager took task `id` off its queue (runs plus skipped redeliveries). */
    function deliveries(id: number): number[] {
      return managers.map((m) => m.lines.filter((l) => l.taskId === id
        && (l.msg === 'running handler' || l.msg === 'already finished; redelivery acked without running the handler')).length);
    }

    it('accepts tasks while RabbitMQ is down (CREATED) and sends each exactly once when it is back, with two API instances', async function () {
      const ids: number[] = [];
      try {
        await broker.stopApp();
        for (let i = 0; i < 40; i++) {
          const task = await post(`down-${i}`, i % 2 ? secondPort : h.port);
          assert.equal(task.status, 'CREATED');
          ids.push(task.id);
        }
      } finally {
        await broker.startApp();
      }
      await h.checkInvariants(accepted, QUEUES);
      // Both API instances ran the resend job over the same rows; SKIP LOCKED kept them apart.
      for (const id of ids) assert.deepEqual(deliveries(id), [1, 1], `task ${id} delivered ${deliveries(id)} times`);
      // A resend is the only copy ever delivered here: its run is the first attempt, not a second.
      const attempts = await h.query(`SELECT DISTINCT attempts FROM task_response WHERE task_id IN (${ids.map(() => '?').join(', ')})`, ids);
      assert.deepEqual(attempts.map((r) => Number(r.attempts)), [1]);
    });

    it('reconnects after the broker closes every connection, and goes on', async function () {
      await broker.closeAll();
      // A forced close emits 'close' without 'error': both must lead to a reconnect.
      for (const m of managers) await m.waitForLog((l) => l.msg === 'connection lost, reconnecting', 10_000, 'connection lost');
      for (let i = 0; i < 10; i++) await post(`after-close-${i}`);
      await h.checkInvariants(accepted, QUEUES);
    });

    it('delivers tasks queued while the managers were away, after a broker restart', async function () {
      const [m1, m2] = managers;
      assert.equal(await m1.stop(), 0);
      assert.equal(await m2.stop(), 0);
      for (let i = 0; i < 10; i++) await post(`queued-${i}`);
      try {
        await broker.stopApp();
      } finally {
        await broker.startApp();
      }
      // The API reconnected by itself; the queued persistent messages survived the restart.
      for (let i = 0; i < 5; i++) await post(`after-restart-${i}`);
      managers = await startManagers();
      await h.checkInvariants(accepted, QUEUES);
      if (broker.allTls) {
        // Every reconnection went back over TLS: none fell back to the plain listener the node also has.
        let problem: string | null = 'not asked';
        // The management API lists a connection with its first statistics, a few seconds after it opened.
        for (const deadline = Date.now() + 30_000; problem !== null && Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
          problem = await broker.allTls(h);
        }
        assert.equal(problem, null);
      }
    });
  });
}

brokerFaults('faults: RabbitMQ', async () => sharedBroker(), false);
brokerFaults('faults: RabbitMQ over TLS (a node of its own, AMQPS with client certificates)', tlsBroker, true);
