import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ApiClient } from './client';
import * as commands from './commands';
import { CliError, EXIT } from './exit-status';
import { defaultFormat, OUTPUT_FORMATS, type OutputFormat } from './output';
import { ENDPOINT_STATES, TASK_STATUSES } from './types';

const EXAMPLES = `
Examples:
  $ tasker send worker --identifier deploy-42 --payload '{"version": "1.4.2"}' --endpoints web1,web2 --wait
  $ tasker send backup --payload @backup.json --wait --output json > result.json
  $ tasker send worker --payload '{"version": "1.4.3"}' --batch-size 10% --max-errors 2 --wait
  $ tasker get worker deploy-42
  $ tasker list worker --status INCOMPLETE --since 2026-11-24
  $ tasker watch worker deploy-42
  $ tasker logs deploy deploy-42 --endpoint web1 --follow
  $ tasker retry worker deploy-42 --endpoints failed --wait
  $ tasker cancel worker deploy-42
  $ tasker endpoints
  $ tasker send worker --selector 'role=web,region in (eu,us)' --dry-run
  $ tasker schedule create nightly --type backup --cron '30 2 * * *' --timezone Europe/Berlin
  $ tasker webhook add https://hooks.example.com/tasker --events task.done,task.incomplete
  $ TASKER_TOKEN=tkr_... tasker token create deployer --scope submit:worker --scope read

Exit status: 0 every endpoint succeeded (or the command did what was asked), 2 some endpoint failed,
3 the task is INCOMPLETE, CANCELLED or STOPPED, 1 a usage error, an API that cannot be reached or that refused
the request; a one-line reason goes to stderr.`;

const collect = (value: string, previous: string[] = []): string[] => [...previous, ...commands.nameList(value)];

function positiveInt(value: string): string {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('must be a positive whole number');
  return value;
}

/** `--timeout`: whole seconds from 1 to 30 days, as the API takes them. */
function timeoutSeconds(value: string): string {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 30 * 86400) {
    throw new InvalidArgumentError('must be a whole number of seconds from 1 to 2592000 (30 days)');
  }
  return value;
}

/** `--batch-size` / `--max-errors`: a whole number from `min`, or a percentage. */
function rolloutAmount(min: number) {
  return (value: string): string => {
    const percent = /^(\d{1,3})%$/.exec(value);
    if (percent ? Number(percent[1]) < min || Number(percent[1]) > 100 : !/^\d+$/.test(value) || Number(value) < min) {
      throw new InvalidArgumentError(`must be a whole number of at least ${min}, or a percentage from ${min}% to 100%`);
    }
    return value;
  };
}

interface Globals {
  url: string;
  token?: string;
  output?: OutputFormat;
}

/**
 * The `tasker` command line: its commands, options and help, made with commander. `run` answers the exit
 * status instead of exiting, so that the entry point lets the output drain first.
 */
export async function run(argv: string[], io: commands.Io): Promise<number> {
  let code: number = EXIT.OK;
  const program = new Command('tasker');

  /** Runs a command's action with the API client and the output format of the global options. */
  const action = <A extends unknown[]>(fn: (ctx: commands.Context, ...args: A) => Promise<number>) => async (...args: A): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const g = cmd.optsWithGlobals<Globals>();
    const ctx: commands.Context = {
      client: new ApiClient({ url: g.url, token: g.token }), format: g.output ?? defaultFormat(io.stdout.isTTY === true), io,
    };
    code = await fn(ctx, ...args);
  };

  program
    .description('Send tasks to endpoints and follow them through the tasker HTTP API.')
    .addOption(new Option('--url <url>', 'the API').env('TASKER_URL').default('http://127.0.0.1:8888'))
    .addOption(new Option('--token <token>', 'bearer token (when the API runs with api.auth: tokens)').env('TASKER_TOKEN'))
    .addOption(new Option('-o, --output <format>', 'table (default at a terminal) | json (default otherwise) | yaml').choices(OUTPUT_FORMATS).env('TASKER_OUTPUT'))
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // One line: commander's "(Did you mean …?)" goes on the same one.
      outputError: (s, write) => write(s.replace(/^error: /, 'tasker: ').replace(/\n\(Did you mean (.*)\?\)\n$/, ' (did you mean $1?)\n')),
    })
    .addHelpText('after', EXAMPLES);

  program.command('send')
    .description('create a task of TYPE; with --wait, show its progress until it ends')
    .argument('<type>', 'task type')
    .option('-i, --identifier <id>', 'the task\'s key, unique per type (default: a random UUID)')
    .option('-p, --payload <json>', 'JSON handed to the handlers, or @file (@- for standard input)')
    .option('-e, --endpoints <names>', 'comma-separated endpoints (default: every endpoint registered for TYPE)')
    .option('-l, --selector <selector>', 'a label selector instead of --endpoints: the live endpoints of TYPE it matches (e.g. \'role=web,region in (eu,us)\')')
    .option('--dry-run', 'show the endpoints the task would go to; create nothing')
    .option('--allow-unknown-endpoints', 'accept --endpoints names that never registered and were not added (their queues keep the task until they appear)')
    .option('-b, --batch-size <n>', 'a rollout: at most N endpoints (or N% of them) run the task at once', rolloutAmount(1))
    .option('--max-errors <n>', 'with --batch-size: send to no more endpoints once more than N (or N%) failed or went missing', rolloutAmount(0))
    .option('-t, --timeout <seconds>', 'seconds the task may run once sent (default: the API\'s api.execution_timeout); then it ends INCOMPLETE, running endpoints timed_out', timeoutSeconds)
    .option('--notify <url>', 'POST the task\'s end to this URL, signed (the API needs api.webhooks.allow_per_task_urls)')
    .option('-w, --wait', 'follow the task until DONE, INCOMPLETE, CANCELLED or STOPPED; exit status by its result')
    .addHelpText('after', '\nExample:\n  $ tasker send worker --identifier deploy-42 --payload \'{"sleep": 1}\' --endpoints console1,console2 --wait')
    .action(action((ctx, type: string, o: commands.SendOptions) => commands.send(ctx, type, o)));

  program.command('get')
    .description('show a task and the state of each of its endpoints')
    .argument('<type>', 'task type').argument('<identifier>', 'task identifier')
    .addHelpText('after', '\nExample:\n  $ tasker get worker deploy-42 --output yaml')
    .action(action((ctx, type: string, id: string) => commands.get(ctx, type, id)));

  program.command('list')
    .description('find tasks of TYPE, newest first')
    .argument('<type>', 'task type')
    .addOption(new Option('--status <status>', 'task status').choices(TASK_STATUSES))
    .option('--endpoint <name>', 'tasks that expect this endpoint')
    .addOption(new Option('--state <state>', 'tasks with an endpoint in this state (of --endpoint, if given)').choices(ENDPOINT_STATES))
    .option('--since <time>', 'stored at or after this ISO 8601 time')
    .option('--until <time>', 'stored before this ISO 8601 time')
    .option('--prefix <text>', 'identifiers that start with this')
    .option('--limit <n>', 'tasks per page (1-500, default 50)', positiveInt)
    .option('--cursor <cursor>', 'the next page (printed under the table, next_cursor in JSON)')
    .addHelpText('after', '\nExample:\n  $ tasker list backup --state failed --endpoint web-17 --limit 10')
    .action(action((ctx, type: string, f: commands.ListFilters) => commands.list(ctx, type, f)));

  program.command('watch')
    .description('show a task\'s progress live until it ends; exit status by its result')
    .argument('<type>', 'task type').argument('<identifier>', 'task identifier')
    .action(action((ctx, type: string, id: string) => commands.watch(ctx, type, id)));

  program.command('logs')
    .description('show a task\'s output lines (a command\'s stdout and stderr, a handler\'s response.log), of each endpoint or of one')
    .argument('<type>', 'task type').argument('<identifier>', 'task identifier')
    .option('-e, --endpoint <name>', 'only this endpoint\'s lines (else each line starts with its endpoint when there are several)')
    .option('-f, --follow', 'print lines as they are written, until the endpoints finished')
    .option('--json', 'one JSON object a line (endpoint, attempt, seq, stream, text, time) instead of the text')
    .addHelpText('after', '\nExample:\n  $ tasker logs deploy deploy-42 --endpoint web1 --follow')
    .action(action((ctx, type: string, id: string, o: { endpoint?: string; follow?: boolean; json?: boolean }) => commands.logs(ctx, type, id, o)));

  program.command('retry')
    .description('send a task again to some of its endpoints (each starts a new round)')
    .argument('<type>', 'task type').argument('<identifier>', 'task identifier')
    .requiredOption('-e, --endpoints <which>', 'failed | missing | unfinished | comma-separated names')
    .option('-w, --wait', 'follow the task until it ends again; exit status by its result')
    .option('--idempotency-key <key>', 'a repeat with the same key sends nothing again')
    .addHelpText('after', '\nExample:\n  $ tasker retry backup nightly-1 --endpoints failed --wait')
    .action(action((ctx, type: string, id: string, o: { endpoints: string; wait?: boolean; idempotencyKey?: string }) => commands.retry(ctx, type, id, o)));

  program.command('cancel')
    .description('cancel a task: endpoints that have not started it skip it, running handlers are told to stop')
    .argument('<type>', 'task type').argument('<identifier>', 'task identifier')
    .action(action((ctx, type: string, id: string) => commands.cancel(ctx, type, id)));

  const endpoints = program.command('endpoints')
    .description('the endpoints that registered, with their last heartbeat; `endpoints remove NAME` removes one')
    .option('--limit <n>', 'endpoints per page (1-1000, default 100)', positiveInt)
    .option('--cursor <cursor>', 'the next page')
    .option('-l, --selector <selector>', 'only those whose labels (and facts: hostname, os, arch, version) match, e.g. \'role=web,!canary\'')
    .action(action((ctx, o: { limit?: string; cursor?: string; selector?: string }) => commands.endpoints(ctx, o)));
  endpoints.command('remove')
    .description('remove an endpoint (needs the admin scope): its open responses cancelled, its queues and registry entry deleted')
    .argument('<name>', 'the endpoint')
    .option('-f, --force', 'even while a handler of it runs a task (that response is cancelled too, the handler told to abort)')
    .action(action((ctx, name: string, o: { force?: boolean }) => commands.endpointRemove(ctx, name, o.force === true)));

  const token = program.command('token').description('the API\'s bearer tokens (needs a token with the admin scope)');
  token.command('create')
    .description('create a token; its secret is shown this once')
    .argument('<name>', 'the token\'s name (recorded as the actor of what it does)')
    .requiredOption('-s, --scope <scope>', 'read | operate | admin | submit:* | submit:<type>; repeat or separate with commas', collect)
    .addHelpText('after', '\nExample:\n  $ tasker token create deployer --scope submit:worker,read')
    .action(action((ctx, name: string, o: { scope: string[] }) => commands.tokenCreate(ctx, name, o.scope)));
  token.command('list').description('every token, revoked ones too (never their secrets)')
    .action(action((ctx) => commands.tokenList(ctx)));
  token.command('revoke').description('revoke a token').argument('<name>', 'the token\'s name')
    .action(action((ctx, name: string) => commands.tokenRevoke(ctx, name)));

  const schedule = program.command('schedule').description('tasks created at cron times or fixed intervals');
  const timing = (c: Command): Command => c
    .option('-t, --type <type>', 'the task type of the tasks it creates')
    .option('--cron <expr>', 'cron expression: minute hour day-of-month month day-of-week (six fields: seconds first), or @daily etc.')
    .option('--every <duration>', 'a fixed interval instead: 30s, 5m, 1h30m, 1d')
    .option('--timezone <zone>', 'IANA time zone the cron expression is read in (default UTC)')
    .option('-p, --payload <json>', 'JSON handed to the handlers, or @file (@- for standard input)')
    .option('-e, --endpoints <names>', 'comma-separated endpoints (default: those registered for the type when it fires)')
    .option('-l, --selector <selector>', 'a label selector instead of --endpoints, resolved at each firing to the live endpoints that match');
  timing(schedule.command('create'))
    .description('create a schedule; each firing creates a task with identifier NAME-<scheduled time in UTC>')
    .argument('<name>', 'the schedule\'s name (1-47 of A-Z a-z 0-9 . _ -)')
    .option('--paused', 'create it paused')
    .addHelpText('after', '\nExamples:\n  $ tasker schedule create nightly --type backup --cron \'30 2 * * *\' --timezone Europe/Berlin --payload \'{"keep": 7}\'\n'
      + '  $ tasker schedule create heartbeat --type worker --every 5m --endpoints web1,web2')
    .action(action((ctx, name: string, o: commands.ScheduleOptions & { paused?: boolean }) => {
      if (o.type === undefined) throw new CliError('--type is required');
      return commands.scheduleCreate(ctx, name, o);
    }));
  timing(schedule.command('update'))
    .description('change a schedule: the options given replace the stored values (--cron replaces --every and the other way round)')
    .argument('<name>', 'the schedule\'s name')
    .action(action((ctx, name: string, o: commands.ScheduleOptions) => commands.scheduleUpdate(ctx, name, o)));
  schedule.command('list').description('every schedule, with its next firing')
    .action(action((ctx) => commands.scheduleList(ctx)));
  schedule.command('get').description('a schedule, with its next and last firing').argument('<name>', 'the schedule\'s name')
    .action(action((ctx, name: string) => commands.scheduleGet(ctx, name)));
  for (const [verb, what] of [['pause', 'stop firing until resumed'], ['resume', 'fire again, from the next scheduled time after now'], ['delete', 'delete a schedule (its tasks stay)']] as const) {
    schedule.command(verb).description(what).argument('<name>', 'the schedule\'s name')
      .action(action((ctx, name: string) => commands.scheduleAction(ctx, name, verb)));
  }

  const webhook = program.command('webhook').description('webhook subscriptions: task events POSTed, signed, to a URL (needs the admin scope)');
  webhook.command('add')
    .description('subscribe a URL; its signing secret is shown this once')
    .argument('<url>', 'https URL the events are POSTed to')
    .requiredOption('--events <names>', 'comma-separated: task.created, task.done, task.incomplete, task.stopped, task.cancelled, response.failed, endpoint.stale')
    .option('-t, --types <types>', 'comma-separated task types (default: every type)')
    .option('-l, --selector <selector>', 'label selector: only tasks some endpoint of which matches, and matching endpoints (default: all)')
    .option('-d, --description <text>', 'what it is for')
    .addHelpText('after', '\nExample:\n  $ tasker webhook add https://hooks.example.com/tasker --events task.done,task.incomplete --types backup')
    .action(action((ctx, url: string, o: commands.WebhookOptions) => commands.webhookAdd(ctx, url, o)));
  webhook.command('list').description('every subscription (never its secret)')
    .action(action((ctx) => commands.webhookList(ctx)));
  webhook.command('rm').description('delete a subscription and its deliveries').argument('<id>', 'the subscription\'s id')
    .action(action((ctx, id: string) => commands.webhookRemove(ctx, id)));
  for (const [verb, enabled] of [['enable', true], ['disable', false]] as const) {
    webhook.command(verb).description(enabled ? 'deliver again (also after it was disabled for failing)' : 'stop deliveries (they wait)')
      .argument('<id>', 'the subscription\'s id')
      .action(action((ctx, id: string) => commands.webhookEnable(ctx, id, enabled)));
  }
  webhook.command('rotate').description('a new signing secret, shown this once; the old one signs too for api.webhooks.rotation_overlap')
    .argument('<id>', 'the subscription\'s id')
    .action(action((ctx, id: string) => commands.webhookRotate(ctx, id)));
  webhook.command('test').description('POST a signed test message now; exit status 0 when the receiver answered 2xx').argument('<id>', 'the subscription\'s id')
    .action(action((ctx, id: string) => commands.webhookTest(ctx, id)));
  webhook.command('deliveries').description('the delivery log, newest first').argument('<id>', 'the subscription\'s id, or notify (the tasks\' own notify URLs)')
    .option('--limit <n>', 'deliveries per page (1-1000, default 50)', positiveInt)
    .option('--before <delivery>', 'older than this delivery id', positiveInt)
    .action(action((ctx, id: string, o: { limit?: string; before?: string }) => commands.webhookDeliveries(ctx, id, o)));
  webhook.command('redeliver').description('send a delivery again, under the same webhook-id and body')
    .argument('<id>', 'the subscription\'s id, or notify').argument('<delivery>', 'the delivery\'s id')
    .action(action((ctx, id: string, delivery: string) => commands.webhookRedeliver(ctx, id, delivery)));

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.ERROR;
    if (err instanceof CliError) {
      io.stderr.write(`tasker: ${err.message}\n`);
      return err.code;
    }
    io.stderr.write(`tasker: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.ERROR;
  }
  return code;
}
