import assert from 'node:assert/strict';
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
  });
}
