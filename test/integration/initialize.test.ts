import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { Harness } from '../support/harness';

/**
 * `initialize` resets a mode's data: where there is some, it says what it would delete and changes nothing
 * unless told `--yes`. A first initialize (the harness's own, on a fresh database and vhost) needs no flag.
 */
for (const backend of ['rabbitmq', 'standalone'] as const) {
  describe(`initialize asks before it deletes data (${backend})`, function () {
    const h = new Harness({ backend });
    const tasks = async (): Promise<number> => Number((await h.query<{ n: number }>('SELECT COUNT(*) AS n FROM task'))[0].n);
    const queues = async (): Promise<string[]> => {
      const { json } = await h.admin().request('GET', `/queues/${encodeURIComponent(h.config.manager.message_queue.virtual_host)}?columns=name`);
      return (json as { name: string }[]).map((q) => q.name).sort();
    };

    /** Whether the mode's database (MySQL: the database and its user; SQLite: the file) exists. */
    const stored = async (): Promise<boolean> => {
      const { uri, admin_uri: adminUri } = h.config.manager.db;
      if (uri.startsWith('sqlite:')) return existsSync(uri.slice('sqlite:'.length));
      const root = await mysql.createConnection({ uri: adminUri });
      try {
        const [dbs] = await root.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [h.id]);
        const [users] = await root.query('SELECT User FROM mysql.user WHERE User = ?', [h.id]);
        return (dbs as unknown[]).length + (users as unknown[]).length > 0;
      } finally {
        await root.end();
      }
    };

    before(async function () {
      await h.setup(this);
      if (backend === 'standalone') {
        // Standalone has no initialize of its own in the harness: the first run creates the tables.
        const first = await h.runScript('initialize.js', []);
        assert.equal(first.code, 0, first.output);
      }
      const api = backend === 'rabbitmq' ? await h.startApi() : await h.startAllInOne([{ name: 'console1', task_types: ['worker'] }]);
      assert.equal((await h.post('worker', { identifier: 'kept', payload: { sleep: 0 }, endpoints: ['console1'] })).status, 201);
      await api.stop();
    });

    after(async function () {
      await h.teardown();
    });

    it('refuses to reset what exists without --yes, says what it would delete, and changes nothing', async function () {
      const before = backend === 'rabbitmq' ? await queues() : [];
      const refused = await h.runScript('initialize.js', []);
      assert.equal(refused.code, 1, refused.output);
      assert.match(refused.output, /this would delete the tables of (mysql|sqlite):\S* \(\d+ tables, 1 tasks\)/);
      if (backend === 'rabbitmq') {
        assert.match(refused.output, new RegExp(`and the RabbitMQ vhost '${h.config.manager.message_queue.virtual_host}' \\(\\d+ queues, \\d+ messages\\)`));
        assert.ok(!refused.output.includes(':secret') && !/\/\/[^:@/]+:[^*@/][^@/]*@/.test(refused.output), 'no password in the message');
      }
      assert.match(refused.output, /nothing was changed\. Run it again with --yes/);
      assert.equal(await tasks(), 1);
      if (backend === 'rabbitmq') assert.deepEqual(await queues(), before);

      const onlyDb = await h.runScript('initialize.js', ['--database']);
      assert.equal(onlyDb.code, 1, onlyDb.output);
      assert.doesNotMatch(onlyDb.output, /vhost/);
      assert.equal(await tasks(), 1);
    });

    it('resets with --yes (or --force)', async function () {
      const reset = await h.runScript('initialize.js', ['--yes']);
      assert.equal(reset.code, 0, reset.output);
      assert.equal(await tasks(), 0);
      const again = await h.runScript('initialize.js', ['--database', '--force']);
      assert.equal(again.code, 0, again.output);
    });

    it('tears down with --teardown --yes: database (or file) and its user, vhost, its user and its endpoint users; says what first', async function () {
      const mq = h.config.manager.message_queue;
      const endpointUser = `${h.id}-ep`;
      if (backend === 'rabbitmq') await h.addEndpointUser(endpointUser, 'secret-pw');
      const asked = await h.runScript('initialize.js', ['--teardown']);
      assert.equal(asked.code, 1, asked.output);
      if (backend === 'rabbitmq') {
        assert.match(asked.output, new RegExp(`--teardown would remove the database '${h.id}' \\(\\d+ tables, 0 tasks\\) and its user '${h.id}' and the RabbitMQ vhost '${mq.virtual_host}' \\(\\d+ queues, \\d+ messages\\), its user '${mq.username}' and the endpoint users allowed on it only \\(of ${endpointUser}\\)`));
      } else {
        assert.match(asked.output, /--teardown would remove the SQLite file \S+ \(\d+ tables, 0 tasks\)/);
      }
      assert.match(asked.output, /nothing was changed\. Run it again with --yes/);
      assert.ok(await stored(), 'the data is still there');

      const done = await h.runScript('initialize.js', ['--teardown', '--yes']);
      assert.equal(done.code, 0, done.output);
      assert.equal(await stored(), false);
      if (backend === 'rabbitmq') {
        const admin = h.admin();
        assert.equal((await admin.request('GET', `/vhosts/${encodeURIComponent(mq.virtual_host)}`, undefined, [404])).status, 404);
        for (const user of [mq.username, endpointUser]) assert.equal((await admin.request('GET', `/users/${encodeURIComponent(user)}`, undefined, [404])).status, 404, user);
      }
      const again = await h.runScript('initialize.js', ['--teardown']);
      assert.equal(again.code, 1, again.output);
      assert.match(again.output, backend === 'rabbitmq' ? /would remove the database '\w+' \(0 tables, 0 tasks\) and its user/ : /would remove nothing of the mode \(none of it exists\)/);
    });
  });
}
