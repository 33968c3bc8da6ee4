import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config/loader';
import { brokerAddresses, parseHostEntry } from '../../protocol/rabbitmq/hosts';
import { NodeRotation } from '../../protocol/rabbitmq/node-rotation';
import { Unconfirmed } from '../../protocol/rabbitmq/unconfirmed';

function load(mq: string, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-config-'));
  writeFileSync(path.join(dir, 'x.config.yaml'), `task_types: [worker]\nmanager:\n  message_queue:\n${mq}`);
  return loadConfig({ mode: 'x', env, configDir: dir });
}

describe('RabbitMQ cluster nodes', function () {
  describe('manager.message_queue.hosts', function () {
    it('takes host and host:port entries; an entry without a port gets `port`', function () {
      const cfg = load('    port: 5999\n    hosts: [rabbit-a, "rabbit-b:5673", "10.0.0.3:5674", "[::1]:5675"]\n');
      assert.deepEqual(brokerAddresses(cfg.manager.message_queue), [
        { host: 'rabbit-a', port: 5999 }, { host: 'rabbit-b', port: 5673 }, { host: '10.0.0.3', port: 5674 }, { host: '::1', port: 5675 },
      ]);
    });

    it('falls back to host and port when hosts is absent or empty', function () {
      assert.deepEqual(brokerAddresses(load('    host: mq\n    port: 5680\n').manager.message_queue), [{ host: 'mq', port: 5680 }]);
      assert.deepEqual(brokerAddresses(load('    host: mq\n    hosts: []\n').manager.message_queue), [{ host: 'mq', port: 5672 }]);
    });

    it('takes a comma-separated list or a YAML list from the environment', function () {
      const csv = load('    port: 5672\n', { TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: 'a:1, b:2,c' });
      assert.deepEqual(csv.manager.message_queue.hosts, ['a:1', 'b:2', 'c']);
      const list = load('    port: 5672\n', { TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: '[a:1, b:2]' });
      assert.deepEqual(list.manager.message_queue.hosts, ['a:1', 'b:2']);
      assert.deepEqual(load('    host: mq\n', { TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: '' }).manager.message_queue.hosts, []);
    });

    it('refuses a malformed entry or port, naming the entry', function () {
      assert.throws(() => load('    hosts: ["a:b:c"]\n'), (err: Error) => err instanceof ConfigError && /'manager\.message_queue\.hosts\[0\]': must be host or host:port/.test(err.message));
      assert.throws(() => load('    hosts: ["rabbit:70000"]\n'), /'manager\.message_queue\.hosts\[0\]': 'rabbit:70000': port must be 1-65535/);
      assert.throws(() => load('    hosts: ["amqp://x"]\n'), /host or host:port/);
    });

    it('refuses a host that is not among hosts, and no host at all', function () {
      assert.throws(() => load('    host: other\n    hosts: [a, b]\n'), /'manager\.message_queue\.host': 'other' is not among manager\.message_queue\.hosts \(a, b\)/);
      assert.doesNotThrow(() => load('    host: a\n    hosts: ["a:5681", "b:5682"]\n'));
      assert.throws(() => load('    host: ""\n'), /'manager\.message_queue\.host': must be set when manager\.message_queue\.hosts is empty/);
      assert.doesNotThrow(() => load('    host: ""\n    hosts: [a]\n'));
    });

    it('production mode: TASKER_MQ_HOST or TASKER_MQ_HOSTS, and one of them is required', function () {
      const env = { TASKER_MQ_USERNAME: 'u', TASKER_MQ_PASSWORD: 'p' };
      assert.throws(() => loadConfig({ mode: 'production', env }), /'manager\.message_queue\.host': must be set/);
      const cluster = loadConfig({ mode: 'production', env: { ...env, TASKER_MQ_HOSTS: 'r1:5672,r2:5672,r3:5672', TASKER_MQ_QUEUE_TYPE: 'quorum' } });
      assert.deepEqual(brokerAddresses(cluster.manager.message_queue).map((a) => a.host), ['r1', 'r2', 'r3']);
      assert.equal(cluster.manager.message_queue.queue_type, 'quorum');
    });

    it('parses a bare entry', function () {
      assert.deepEqual(parseHostEntry('mq.example.org', 5672), { host: 'mq.example.org', port: 5672 });
      assert.throws(() => parseHostEntry('', 5672));
    });
  });

  describe('NodeRotation', function () {
    const nodes = [{ host: 'a', port: 1 }, { host: 'b', port: 2 }, { host: 'c', port: 3 }];

    it('starts at a random node, so that a fleet spreads', function () {
      assert.equal(new NodeRotation(nodes, () => 0).current.host, 'a');
      assert.equal(new NodeRotation(nodes, () => 0.5).current.host, 'b');
      assert.equal(new NodeRotation(nodes, () => 0.99).current.host, 'c');
    });

    it('moves on after a failure and counts a backoff round only when every node failed', function () {
      const r = new NodeRotation(nodes, () => 0);
      assert.equal(r.failed(), false);
      assert.equal(r.current.host, 'b');
      assert.equal(r.failed(), false);
      assert.equal(r.current.host, 'c');
      assert.equal(r.failed(), true);
      assert.equal(r.backoffRound, 1);
      assert.equal(r.current.host, 'a');
      r.connected();
      assert.equal(r.backoffRound, 0);
    });

    it('goes to the next node after a lost connection', function () {
      const r = new NodeRotation(nodes, () => 0.5);
      r.lost();
      assert.equal(r.current.host, 'c');
    });
  });

  describe('Unconfirmed', function () {
    it('fails every publish still waiting, and none that settled', async function () {
      const u = new Unconfirmed();
      const settled: string[] = [];
      const wait = (name: string): { done: () => void; p: Promise<void> } => {
        let forget = (): void => undefined;
        const p = new Promise<void>((_resolve, reject) => { forget = u.add(reject) as () => void; })
          .catch((err: Error) => { settled.push(`${name}: ${err.message}`); });
        return { done: forget, p };
      };
      const a = wait('a');
      const b = wait('b');
      a.done();
      u.failAll(() => new Error('blocked'));
      await b.p;
      assert.deepEqual(settled, ['b: blocked']);
      assert.equal(u.size, 0);
    });
  });
});
