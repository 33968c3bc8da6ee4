import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GetMessage } from 'amqplib';
import { publicKeyLine, SIGNATURE_HEADER, TaskSigner } from '../../protocol/task-signature';
import { Topology } from '../../protocol/topology';
import { ERRNR_TASK_REFUSED } from '../../protocol/wire';
import { Harness, Proc } from '../support/harness';
import { parseMetrics } from '../support/prometheus';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const EP = 'ep1';
const TOPOLOGY = new Topology('tasker', 'classic');
const QUEUE = TOPOLOGY.endpointQueueName('runlog', EP);

/**
 * Signed tasks (docs/security.md "Signed tasks"): the API signs with a key made by `npm run keys -- create`, the
 * endpoint trusts its public key. Whoever holds the application's RabbitMQ user can still publish to a
 * task type's exchange, but what it publishes unsigned, altered, signed by another key, or replayed after
 * its deadline runs nowhere: it is dead-lettered and the task shows the endpoint failed with errnr 259.
 */
describe('signed tasks (rabbitmq)', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-signed-'));
  const keyFile = path.join(dir, 'signing.pem');
  const runLog = path.join(dir, 'runs.jsonl');
  // The real command, before the harness exists: the API reads the key when it loads its configuration.
  const created = execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', 'scripts', 'keys.js'), 'create', '--file', keyFile, '--mode', 'test'],
    { encoding: 'utf8', env: { ...process.env, TASKER_MODE: '' } });
  const publicLine = /manager\.trust\.public_keys: \[(ed25519:[A-Za-z0-9+/=]+)\]/.exec(created)?.[1] ?? '';
  const h = new Harness({
    waitTimeout: 10,
    env: {
      TASKER_TASK_TYPES: '[worker, runlog]', TASKER_MANAGER__HANDLERS_DIR: 'test/handlers', TASKER_TEST_RUN_LOG: runLog,
      TASKER_API__SIGNING__PRIVATE_KEY: keyFile, TASKER_MANAGER__TRUST__PUBLIC_KEYS: publicLine,
      // The test's processes share one clock: a deadline is passed the moment it passes.
      TASKER_MANAGER__TRUST__MAX_SKEW: '0',
    },
  });
  let manager: Proc | null = null;

  before(async function () {
    assert.ok(publicLine, created);
    await h.setup(this);
    await h.startApi();
    manager = await h.startManager(EP, ['runlog']);
  });

  after(async function () {
    await h.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  const starts = (): number[] => (existsSync(runLog) ? readFileSync(runLog, 'utf8') : '').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; task: number }).filter((m) => m.event === 'start').map((m) => m.task);
  const refusedLines = (p: Proc): Record<string, unknown>[] => p.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('task refused and dead-lettered'));
  const deadLetters = (): Promise<number> => h.withChannel(async (ch) => (await ch.checkQueue(TOPOLOGY.deadLetterQueue.name)).messageCount);

  it('keys create wrote a private key only its owner reads, and the manager trusts its key', async function () {
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const line = await (manager as Proc).waitForLog((l) => l.msg === 'endpoints run only tasks signed by a trusted key');
    assert.equal((line.keys as string[]).length, 1);
  });

  it('keys rotate writes a new key and keeps the old one beside it; keys list shows both ids and which is trusted', function () {
    const keys = (args: string[], env: NodeJS.ProcessEnv = {}): string => execFileSync(process.execPath,
      [path.resolve(__dirname, '..', '..', 'scripts', 'keys.js'), ...args, '--mode', 'test'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TASKER_MODE: '', ...env } });
    const file = path.join(dir, 'rotated', 'k.pem');
    const first = /^key ([0-9a-f]{16}) written/.exec(keys(['create', '--file', file]))?.[1];
    assert.ok(first);
    const rotated = keys(['rotate', '--file', file]);
    const second = /^key ([0-9a-f]{16}) written/.exec(rotated)?.[1];
    assert.ok(second && second !== first, rotated);
    assert.match(rotated, new RegExp(`previous key ${first} kept as .*k-${first}\\.pem`));
    assert.equal(statSync(path.join(dir, 'rotated', `k-${first}.pem`)).mode & 0o777, 0o600);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const lines = [...rotated.matchAll(/ed25519:[A-Za-z0-9+/=]+/g)].map((m) => m[0]);
    // Trusting the new key only: list says which of the two files is signing, and which is trusted.
    const listed = keys(['list', '--file', file], { TASKER_MANAGER__TRUST__PUBLIC_KEYS: lines[0] }).trim().split('\n').map((l) => l.split('\t'));
    assert.deepEqual(listed.map((l) => [l[0], l[2]]).sort(), [[first, 'kept, not trusted here'], [second, 'signing, trusted']].sort());
    assert.throws(() => keys(['create', '--file', file]), /exists already/);
  });

  it('initialize creates the key api.signing.private_key names when it does not exist, and checks it when it does', async function () {
    const file = path.join(dir, 'made-by-initialize', 'signing.pem');
    const made = await h.runScript('initialize.js', ['--upgrade'], { TASKER_API__SIGNING__PRIVATE_KEY: file });
    assert.equal(made.code, 0, made.output);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const line = JSON.parse(made.output.split('\n').find((l) => l.includes('signing key created')) ?? '{}') as Record<string, string>;
    assert.match(line.trust, /^ed25519:[A-Za-z0-9+/]{43}=$/);
    const again = await h.runScript('initialize.js', ['--upgrade'], { TASKER_API__SIGNING__PRIVATE_KEY: file });
    assert.equal(again.code, 0, again.output);
    assert.ok(again.output.includes(line.trust) && again.output.includes('signing key present'), again.output);
    const rsa = path.join(dir, 'initialize-rsa.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa], { stdio: 'ignore' });
    const refused = await h.runScript('initialize.js', ['--upgrade'], { TASKER_API__SIGNING__PRIVATE_KEY: rsa });
    assert.notEqual(refused.code, 0);
    assert.match(refused.output, /config key 'api\.signing\.private_key': .*is a rsa key, not an Ed25519 one/);
  });

  it('endpoint add prints a command that trusts the key', async function () {
    const output = await h.addEndpointUser('ep9', 'secret-ep9');
    assert.ok(output.includes(`TASKER_MANAGER__TRUST__PUBLIC_KEYS=${publicLine} `), output);
  });

  it('runs signed tasks: targeted, and a broadcast through the fanout', async function () {
    const targeted = await h.post('runlog', { identifier: 'signed-1', endpoints: [EP], payload: { sleep: 0 } });
    assert.equal(targeted.status, 201, JSON.stringify(targeted.json));
    const broadcast = await h.post('runlog', { identifier: 'signed-all', payload: { sleep: 0 } });
    assert.equal(broadcast.status, 201, JSON.stringify(broadcast.json));
    await h.waitForStatus('runlog', 'signed-1', ['DONE']);
    await h.waitForStatus('runlog', 'signed-all', ['DONE']);
    assert.ok(starts().includes(targeted.json.id as number));
    assert.ok(starts().includes(broadcast.json.id as number));
    assert.deepEqual(refusedLines(manager as Proc), []);
  });

  it('runs nothing unsigned, altered, signed by another key, or replayed after its deadline: each dead-lettered and shown refused', async function () {
    this.timeout(90_000);
    await (manager as Proc).stop();
    // Four real tasks whose signed messages wait in the stopped endpoint's queue; the last one's deadline is 2 s away.
    const kinds = ['unsigned', 'altered', 'foreign', 'expired'] as const;
    const ids = new Map<string, number>();
    for (const kind of kinds) {
      const res = await h.post('runlog', { identifier: `forged-${kind}`, endpoints: [EP], payload: { sleep: 0 }, ...(kind === 'expired' ? { timeout: 2 } : {}) });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      ids.set(kind, res.json.id as number);
    }
    // An attacker with the application's user reads them off the queue...
    const genuine = new Map<number, GetMessage>();
    await h.withChannel(async (ch) => {
      for (let tries = 0; genuine.size < kinds.length && tries < 100; tries++) {
        const m = await ch.get(QUEUE);
        if (!m) {
          await sleep(100);
          continue;
        }
        genuine.set(Number(m.properties.messageId), m);
        ch.ack(m);
      }
    });
    assert.equal(genuine.size, kinds.length);
    for (const m of genuine.values()) assert.match(String(m.properties.headers?.[SIGNATURE_HEADER]), /^v1;key=[0-9a-f]{16};deadline=\S+;sig=\S+$/);
    const expired = genuine.get(ids.get('expired') as number) as GetMessage;
    const deadline = Date.parse(/deadline=([^;]+)/.exec(String(expired.properties.headers?.[SIGNATURE_HEADER]))?.[1] ?? '');
    await sleep(Math.max(0, deadline - Date.now()) + 500);
    // ...and publishes them to the type's exchange, each spoiled its own way.
    const foreign = new TaskSigner(generateKeyPairSync('ed25519').privateKey);
    const dlqBefore = await deadLetters();
    await h.withChannel(async (ch) => {
      for (const kind of kinds) {
        const m = genuine.get(ids.get(kind) as number) as GetMessage;
        const headers = { ...m.properties.headers };
        let body = m.content;
        const task = JSON.parse(body.toString('utf8')) as { id: number; type: string };
        if (kind === 'unsigned') delete headers[SIGNATURE_HEADER];
        if (kind === 'altered') body = Buffer.from(body.toString('utf8').replace('"sleep":0', '"sleep":0,"command":"rm -rf /"'));
        if (kind === 'foreign') headers[SIGNATURE_HEADER] = foreign.header({ id: task.id, type: task.type, round: 0, deadline: new Date(Date.now() + 3_600_000) }, body);
        ch.publish(TOPOLOGY.taskExchange('runlog'), '', body, { persistent: true, messageId: m.properties.messageId, headers });
      }
    });
    manager = await h.startManager(EP, ['runlog']);
    const reasons = { unsigned: 'unsigned', altered: 'bad_signature', foreign: 'unknown_key', expired: 'expired' };
    for (const kind of kinds) {
      const line = await (manager as Proc).waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('task refused') && l.taskId === ids.get(kind));
      assert.equal(line.reason, reasons[kind], kind);
    }
    // The task shows the endpoint failed, with errnr 259 and the reason; the deadline's own sweep had
    // already ended the expired one (the endpoint missing), and the refusal is recorded on it too.
    const shown = { unsigned: /task refused: unsigned/, altered: /does not match the message/, foreign: /which this endpoint does not trust/, expired: /deadline .* passed/ };
    for (const kind of kinds) {
      let r: any;
      for (let tries = 0; ; tries++) {
        r = (await h.get(`runlog/forged-${kind}/responses`)).json.responses.find((x: any) => x.endpoint === EP);
        if (r?.errnr === ERRNR_TASK_REFUSED) break;
        assert.ok(tries < 100, `${kind}: never shown refused: ${JSON.stringify(r)}`);
        await sleep(100);
      }
      assert.equal(r.state, 'failed', kind);
      assert.match(String(r.errmsg), shown[kind], kind);
    }
    // Ended, its one endpoint failed: a refusal is final, as a handler's error is.
    for (const kind of ['unsigned', 'altered', 'foreign']) assert.equal((await h.get(`runlog/forged-${kind}`)).json.task.status, 'DONE', kind);
    // Ran nowhere, and every copy is in the dead-letter queue.
    await sleep(500);
    for (const id of ids.values()) assert.ok(!starts().includes(id), `task ${id} ran`);
    for (let tries = 0; (await deadLetters()) < dlqBefore + kinds.length; tries++) {
      assert.ok(tries < 50, `dead-letter queue holds ${await deadLetters()}, expected ${dlqBefore + kinds.length}`);
      await sleep(200);
    }
    const metrics = parseMetrics(await (await fetch(`${h.baseUrl}/metrics`)).text());
    const refused = metrics.filter((s) => s.name === 'tasker_responses_total' && s.labels.outcome === 'refused').reduce((n, s) => n + s.value, 0);
    assert.equal(refused, kinds.length);
  });

  it('keeps a genuine result: an unsigned copy of a task the endpoint finished is refused without changing it', async function () {
    const done = await h.get('runlog/signed-1');
    const id = done.json.task.id as number;
    const body = Buffer.from(JSON.stringify({ id, identifier: 'signed-1', type: 'runlog', payload: { sleep: 0 }, endpoints: [EP], start_time: new Date().toISOString() }));
    const before = refusedLines(manager as Proc).length;
    await h.withChannel(async (ch) => { ch.publish('', QUEUE, body, { persistent: true }); });
    await (manager as Proc).waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('task refused') && l.taskId === id);
    assert.equal(refusedLines(manager as Proc).length, before + 1);
    await sleep(1000);
    const r = (await h.get('runlog/signed-1/responses')).json.responses.find((x: any) => x.endpoint === EP);
    assert.equal(r.state, 'succeeded');
    assert.equal(r.errnr, 0);
    assert.equal((await h.get('runlog/signed-1')).json.task.status, 'DONE');
  });

  it('does not start with a key file missing, a key of another type, or no trusted key where one is required', async function () {
    const rsa = path.join(dir, 'rsa.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa], { stdio: 'ignore' });
    for (const [file, said] of [[path.join(dir, 'none.pem'), /config key 'api\.signing\.private_key': cannot read .*none\.pem: ENOENT/],
      [rsa, /config key 'api\.signing\.private_key': .*rsa\.pem is a rsa key, not an Ed25519 one/]] as const) {
      const api = h.spawnApi(undefined, { TASKER_API__SIGNING__PRIVATE_KEY: file });
      assert.notEqual(await api.exited, 0);
      assert.match(api.raw.join('\n'), said);
    }
    const unsignedApi = h.spawnApi(undefined, { TASKER_API__SIGNING__PRIVATE_KEY: '', TASKER_API__SIGNING__REQUIRED: 'true' });
    assert.notEqual(await unsignedApi.exited, 0);
    assert.match(unsignedApi.raw.join('\n'), /config key 'api\.signing\.private_key': must be set when api\.signing\.required is true/);
    const untrusting = h.spawnManager('ep2', ['runlog'], { TASKER_MANAGER__TRUST__PUBLIC_KEYS: '', TASKER_MANAGER__TRUST__REQUIRED: 'true' });
    assert.notEqual(await untrusting.exited, 0);
    assert.match(untrusting.raw.join('\n'), /config key 'manager\.trust\.public_keys': must list a key when manager\.trust\.required is true/);
  });

  it('signs what a retry and a rollout send: a refused task retried runs, as does a rollout batch', async function () {
    const refusedId = (await h.get('runlog/forged-unsigned')).json.task.id as number;
    const retried = await h.post('runlog/forged-unsigned/retry', { endpoints: [EP] });
    assert.equal(retried.status, 200, JSON.stringify(retried.json));
    const rolled = await h.post('runlog', { identifier: 'signed-rollout', endpoints: [EP], payload: { sleep: 0 }, rollout: { batch_size: 1 } });
    assert.equal(rolled.status, 201, JSON.stringify(rolled.json));
    await h.waitForStatus('runlog', 'signed-rollout', ['DONE']);
    for (let tries = 0; ; tries++) {
      const r = (await h.get('runlog/forged-unsigned/responses')).json.responses.find((x: any) => x.endpoint === EP);
      if (r.state === 'succeeded') break;
      assert.ok(tries < 100, `retry never succeeded: ${JSON.stringify(r)}`);
      await sleep(100);
    }
    assert.ok(starts().includes(refusedId), 'the retried task did not run');
    assert.ok(starts().includes(rolled.json.id as number), 'the rollout did not run');
  });
});

/** The all-in-one process (in-process queues) signs and checks alike: the header travels through its broker too. */
describe('signed tasks (standalone)', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-signed-sa-'));
  const keyFile = path.join(dir, 'signing.pem');
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  const h = new Harness({
    backend: 'standalone',
    env: {
      TASKER_API__SIGNING__PRIVATE_KEY: keyFile,
      // Rotation: a key it no longer signs with, and the one it does.
      TASKER_MANAGER__TRUST__PUBLIC_KEYS: `${publicKeyLine(generateKeyPairSync('ed25519').publicKey)},${publicKeyLine(privateKey)}`,
    },
  });

  before(async function () {
    await h.setup(this);
    await h.startSystem([{ name: 'console1', task_types: ['worker'] }]);
  });

  after(async function () {
    await h.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a signed task when the endpoints trust its key among others', async function () {
    const res = await h.post('worker', { identifier: 'sa-signed', endpoints: ['console1'], payload: { sleep: 0 } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const done = await h.waitForStatus('worker', 'sa-signed', ['DONE']);
    assert.equal(done.taskResponseList[0].state, 'succeeded');
    assert.equal(done.taskResponseList[0].errnr, 0);
  });
});
