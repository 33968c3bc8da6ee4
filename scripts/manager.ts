import { ENDPOINT_PATTERN, EndpointConfig } from '../config/schema';
import { Connections, managerShutdownSteps, startEndpointManagers } from './compose';
import { parseLabelList } from '../protocol/labels';
import { main, requireSharedTransport } from './main';

/**
 * `npm run manager -- --endpoint NAME [--endpoint NAME2] --mode M [--tasktype T ...] [--label K=V ...]`:
 * endpoint managers in the foreground, each with its own broker connection, and no database. Task types
 * default to the endpoint's entry in `manager.endpoints`, else all; labels are the entry's (or
 * `manager.labels`, `TASKER_LABELS`) with those of `--label` over them.
 */
main('manager', {
  endpoint: { type: 'string', multiple: true },
  tasktype: { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
}, async ({ config, logger, values }) => {
  requireSharedTransport(config);
  const names = (values.endpoint ?? []) as string[];
  if (names.length === 0) throw new Error('--endpoint NAME is required');
  const requested = (values.tasktype ?? []) as string[];
  for (const t of requested) {
    if (!config.task_types.includes(t)) throw new Error(`--tasktype '${t}' is not in task_types (${config.task_types.join(', ')})`);
  }
  let given: Record<string, string>;
  try {
    given = parseLabelList((values.label ?? []) as string[]);
  } catch (err) {
    throw new Error(`--label: ${(err as Error).message}`);
  }
  const endpoints: EndpointConfig[] = names.map((name) => {
    if (!ENDPOINT_PATTERN.test(name)) throw new Error(`--endpoint '${name}' is not a valid endpoint name`);
    const configured = config.manager.endpoints.find((e) => e.name === name);
    return {
      name, task_types: requested.length ? requested : configured?.task_types ?? config.task_types,
      labels: { ...(configured?.labels ?? config.manager.labels), ...given },
    };
  });
  const managers = await startEndpointManagers(config, logger, new Connections(config, logger), endpoints);
  return managerShutdownSteps(config, managers);
});
