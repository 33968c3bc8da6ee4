import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CommandTypeSchema, fillPlaceholders } from '../../config/command-types';
import { ConfigError, loadConfig } from '../../config/loader';
import { validateConfig } from '../../config/schema';
import { PayloadSchemas } from '../../api/payload-schemas';
import { InvalidRequestError } from '../../lib/errors';
import { OutputTail } from '../../manager/output-tail';
import { docSection } from '../support/docs';

const DEPLOY = {
  name: 'deploy',
  command: ['/usr/local/bin/deploy', '--version', '{version}'],
  payload_schema: { type: 'object', required: ['version'], properties: { version: { type: 'string', pattern: '^[0-9.]+$' } } },
};

const configWith = (...entries: unknown[]) => validateConfig({ mode: 'x', task_types: ['worker', ...entries], manager: { db: { uri: 'x' } } });

function refused(entry: unknown, key: string, message: RegExp): void {
  assert.throws(() => configWith(entry), (err: Error) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.message.startsWith(`config key '${key}': `), `${err.message} does not name ${key}`);
    assert.match(err.message, message);
    return true;
  });
}

describe('command task types', function () {
  describe('configuration', function () {
    it('keeps task_types a list of names and the command types, with their defaults, in a frozen table', function () {
      const cfg = configWith(DEPLOY);
      assert.deepEqual(cfg.task_types, ['worker', 'deploy']);
      const def = cfg.command_types.deploy;
      assert.deepEqual(def.command, DEPLOY.command);
      assert.deepEqual(def.env, ['PATH']);
      assert.equal(def.shell, false);
      assert.deepEqual(def.output_limit, { stdout: 24_000, stderr: 8_000 });
      assert.equal(cfg.command_types.worker, undefined, 'a module type is no command');
      // No prototype: a type named like one of Object's members finds nothing.
      assert.equal(cfg.command_types.constructor, undefined);
      assert.ok(Object.isFrozen(cfg.command_types) && Object.isFrozen(def) && Object.isFrozen(def.command));
      assert.throws(() => { (def.command as string[]).push('x'); });
      assert.equal(cfg.manager.kill_grace, 5);
    });

    it('reads command types from the YAML, and endpoints may list them', function () {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tasker-config-'));
      writeFileSync(path.join(dir, 'x.config.yaml'), `task_types:
  - worker
  - name: deploy
    command: ["/usr/local/bin/deploy", "--version", "{version}"]
    payload_schema: { type: object, required: [version], properties: { version: { type: string, pattern: "^[0-9.]+$" } } }
    timeout: 600
    cwd: /srv
    env: [PATH, HOME]
    output_limit: { stdout: 100 }
manager:
  kill_grace: 2
  endpoints: [{ name: web1, task_types: [deploy] }]
  db: { uri: x }
`);
      const cfg = loadConfig({ mode: 'x', env: {}, configDir: dir });
      assert.deepEqual(cfg.task_types, ['worker', 'deploy']);
      assert.equal(cfg.command_types.deploy.timeout, 600);
      assert.equal(cfg.command_types.deploy.cwd, '/srv');
      assert.deepEqual(cfg.command_types.deploy.env, ['PATH', 'HOME']);
      assert.deepEqual(cfg.command_types.deploy.output_limit, { stdout: 100, stderr: 8_000 });
      assert.deepEqual(cfg.manager.endpoints[0].task_types, ['deploy']);
      assert.equal(cfg.manager.kill_grace, 2);
    });

    it('refuses a bad command type at start, naming the key', function () {
      refused({ ...DEPLOY, command: [] }, 'task_types[1].command', /non-empty list/);
      refused({ ...DEPLOY, command: 'deploy' }, 'task_types[1].command', /list/);
      refused({ ...DEPLOY, command: ['/bin/deploy', '--version', 7] }, 'task_types[1].command[2]', /string/);
      refused({ ...DEPLOY, command: ['/bin/deploy', ''] }, 'task_types[1].command[1]', /non-empty/);
      refused({ ...DEPLOY, comand: ['x'] }, 'task_types[1].comand', /unknown key/);
      refused({ command: ['x'] }, 'task_types[1].name', /required/);
      refused({ ...DEPLOY, name: 'Deploy!' }, 'task_types[1].name', /must match/);
      refused({ ...DEPLOY, command: ['/bin/deploy', '{release}'] }, 'task_types[1].command[1]', /no property 'release'/);
      refused({ name: 'd', command: ['/bin/deploy', '{v}'] }, 'task_types[1].command[1]', /needs a payload_schema/);
      refused({ ...DEPLOY, payload_schema: { type: 'object', properties: { version: { type: 'string' } } } }, 'task_types[1].command[2]', /required/);
      refused({ ...DEPLOY, payload_schema: { type: 'object', required: ['version'], properties: { version: { type: 'array' } } } },
        'task_types[1].command[2]', /type string, number, integer or boolean/);
      refused({ ...DEPLOY, command: ['/bin/deploy', '--version={version}'] }, 'task_types[1].command[1]', /whole argument/);
      refused({ ...DEPLOY, command: ['{version}'] }, 'task_types[1].command[0]', /program itself/);
      refused({ ...DEPLOY, payload_schema: { type: 'objekt' } }, 'task_types[1].payload_schema', /not a valid JSON Schema/);
      refused({ ...DEPLOY, payload_schema: { type: 'object', requird: ['version'] } }, 'task_types[1].payload_schema', /not a valid JSON Schema/);
      refused({ ...DEPLOY, payload_schema: { ...DEPLOY.payload_schema, properties: { version: { type: 'string', format: 'semver' } } } },
        'task_types[1].payload_schema', /unknown format/);
      refused({ name: 'sh', command: ['echo', 'hi'], shell: true }, 'task_types[1].command', /one string/);
      refused({ ...DEPLOY, timeout: 1741 }, 'task_types[1].timeout', /at most 1740/);
      refused({ ...DEPLOY, timeout: 0 }, 'task_types[1].timeout', /0\.01/);
      refused({ ...DEPLOY, cwd: 'srv' }, 'task_types[1].cwd', /absolute/);
      refused({ ...DEPLOY, env: ['PATH', 'NOT-A-NAME'] }, 'task_types[1].env[1]', /variable name/);
      refused({ ...DEPLOY, output_limit: { stdout: 1_000_000 } }, 'task_types[1].output_limit.stdout', /256000/);
      refused({ ...DEPLOY, output_limit: { stdin: 1 } }, 'task_types[1].output_limit.stdin', /unknown key/);
      refused({ ...DEPLOY, user: 'root; id' }, 'task_types[1].user', /user name/);
      refused({ ...DEPLOY, shell: 'yes' }, 'task_types[1].shell', /true or false/);
      refused({ ...DEPLOY, name: 'worker' }, 'task_types', /duplicates/);
      refused({ ...DEPLOY, name: 'responses' }, 'task_types[1]', /reserved/);
    });

    it('leaves a shell script as written: no placeholders, its braces its own', function () {
      const cfg = configWith({ name: 'sh', command: ['echo ${HOME} {version}'], shell: true });
      assert.deepEqual(cfg.command_types.sh.command, ['echo ${HOME} {version}']);
    });

    it('loads twice, and two types, with payload schemas of the same $id', function () {
      const withId = (name: string) => ({ name, command: ['/bin/x'], payload_schema: { $id: 'payload', type: 'object' } });
      configWith(withId('a'), withId('b'));
      assert.deepEqual(configWith(withId('a')).task_types, ['worker', 'a']);
    });

    it('allows a longer command timeout without RabbitMQ', function () {
      const cfg = validateConfig({ mode: 'x', task_types: [{ ...DEPLOY, timeout: 7200 }], manager: { transport: 'in-process', db: { uri: 'x' } } });
      assert.equal(cfg.command_types.deploy.timeout, 7200);
    });
  });

  describe('placeholders', function () {
    it('fill whole arguments with the payload\'s values, one argument each, whatever they hold', function () {
      const hostile = ['; rm -rf /', '$(id)', '`id`', '--help', '-rf', 'a\nb', '', ' spaced  out ', '{version}', '"quoted"', '*'];
      for (const v of hostile) {
        assert.deepEqual(fillPlaceholders(DEPLOY.command, { version: v }), ['/usr/local/bin/deploy', '--version', v]);
      }
      assert.deepEqual(fillPlaceholders(['/bin/x', '{n}', '{b}'], { n: 1.5, b: false }), ['/bin/x', '1.5', 'false']);
      // The program is never filled, and other arguments are left alone.
      assert.deepEqual(fillPlaceholders(['{p}', 'x{p}', '{}'], { p: 'y' }), ['{p}', 'x{p}', '{}']);
    });

    it('refuse a value that is missing or not a scalar', function () {
      assert.throws(() => fillPlaceholders(DEPLOY.command, {}), /payload\.version is missing/);
      assert.throws(() => fillPlaceholders(DEPLOY.command, { version: ['1'] }), /not a string, number or boolean/);
      assert.throws(() => fillPlaceholders(DEPLOY.command, null), /missing/);
      // An inherited member is not the payload's.
      assert.throws(() => fillPlaceholders(['/bin/x', '{toString}'], {}), /missing/);
    });
  });

  describe('payload schemas at the API', function () {
    it('refuse a payload that fails its type\'s schema with a 400 naming the field', function () {
      const schemas = new PayloadSchemas(configWith(DEPLOY).command_types);
      schemas.check('deploy', { version: '1.2.3' });
      schemas.check('worker', { anything: true });
      const cases: [unknown, RegExp][] = [
        [{ version: '1; rm -rf /' }, /^payload\.version must match pattern/],
        [{}, /^payload\.version is required/],
        [{ version: 3 }, /^payload\.version must be a string/],
        [null, /^payload must be a mapping/],
      ];
      for (const [payload, message] of cases) {
        assert.throws(() => schemas.check('deploy', payload), (err: Error) => {
          assert.ok(err instanceof InvalidRequestError);
          assert.equal(err.status, 400);
          assert.match(err.message, message);
          return true;
        });
      }
    });
  });

  describe('output tail', function () {
    it('keeps the last characters and counts every byte, with bounded memory', function () {
      const tail = new OutputTail(10);
      const chunk = Buffer.alloc(64 * 1024, 'a');
      for (let i = 0; i < 160; i++) tail.push(chunk); // 10 MiB
      tail.push(Buffer.from('0123456789'));
      assert.equal(tail.bytes, 160 * 64 * 1024 + 10);
      assert.deepEqual(tail.text(), { text: '0123456789', truncated: true });
      assert.ok((tail as unknown as { kept: number }).kept <= 10 * 4 + 3, 'keeps no more than the characters need');
    });

    it('is whole and not truncated when the output fits', function () {
      const tail = new OutputTail(100);
      tail.push(Buffer.from('héllo '));
      tail.push(Buffer.from('wörld'));
      assert.deepEqual(tail.text(), { text: 'héllo wörld', truncated: false });
      assert.equal(tail.bytes, Buffer.byteLength('héllo wörld'));
      assert.deepEqual(new OutputTail(100).text(), { text: '', truncated: false });
    });

    it('never starts with half of a character', function () {
      const tail = new OutputTail(3);
      // 4-byte characters, pushed a byte at a time so that every cut falls inside one.
      for (const b of Buffer.from('😀😁😂🤣😃')) tail.push(Buffer.from([b]));
      const { text, truncated } = tail.text();
      assert.ok(truncated);
      assert.ok(!text.includes('\ufffd'), JSON.stringify(text));
      assert.ok('😂🤣😃'.endsWith(text) && text.length >= 2, JSON.stringify(text));
    });

    it('decodes binary output with replacement characters', function () {
      const tail = new OutputTail(100);
      tail.push(Buffer.from([0x00, 0xff, 0xfe, 0x41, 0xc3]));
      assert.deepEqual(tail.text(), { text: '\u0000\ufffd\ufffdA\ufffd', truncated: false });
    });

    it('with a limit of 0 keeps nothing but counts', function () {
      const tail = new OutputTail(0);
      tail.push(Buffer.from('abc'));
      assert.equal(tail.bytes, 3);
      assert.deepEqual(tail.text(), { text: '', truncated: true });
    });
  });
});

describe('the configuration reference (docs/configuration.md "Configuration")', function () {
  it('has a row for every configuration key, and the command type keys in their own table', function () {
    const section = docSection('docs/configuration.md', '## Configuration');
    const rows = section.split('\n').filter((l) => l.startsWith('| `'));
    const keys: string[] = [];
    const walk = (value: unknown, at: string[]): void => {
      if (typeof value === 'object' && value !== null && !Array.isArray(value) && at[0] !== 'command_types') {
        for (const [k, v] of Object.entries(value)) walk(v, [...at, k]);
      } else if (at.length > 0 && at[0] !== 'mode' && at[0] !== 'command_types') {
        keys.push(at.join('.'));
      }
    };
    walk(configWith(), []);
    // `a.b.host` / `port` rows document two keys of one section.
    const documented = (key: string): boolean => {
      const leaf = key.split('.').pop() as string;
      const parent = key.slice(0, key.length - leaf.length);
      return rows.some((r) => r.startsWith(`| \`${key}\` `) || (r.startsWith(`| \`${parent}`) && r.split(' | ')[0].includes(`/ \`${leaf}\``)));
    };
    assert.deepEqual(keys.filter((k) => !documented(k)), [], 'keys without a row in docs/configuration.md "Configuration"');
    const commands = docSection('docs/handlers.md', '## Command task types');
    assert.ok(section && commands, 'docs/configuration.md and docs/handlers.md have their sections');
    for (const key of Object.keys(CommandTypeSchema.properties)) {
      assert.ok(commands.includes(`| \`${key}\` |`), `command type key ${key} has no row in docs/handlers.md "Command task types"`);
    }
  });
});
