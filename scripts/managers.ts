import { ENDPOINT_PATTERN, EndpointConfig } from '../config/schema';
import type { ShutdownStep } from '../lib/lifecycle';
import { parseLabelList } from '../protocol/labels';
import { Connections, managerShutdownSteps, startEndpointManagers } from './compose';
import { MainInput, requireSharedTransport } from './main';

/** The options of an endpoint managers' process: `npm run manager` and the endpoint package's `tasker-endpoint`. */
export const MANAGER_OPTIONS = {
  endpoint: { type: 'string', multiple: true },
  tasktype: { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
} as const;

/**
 * The endpoints to run: those of `--endpoint` (each with its `manager.endpoints` entry's task types and
 * labels when it has one), else every `manager.endpoints` entry. `--tasktype` narrows the task types,
 * `--label` adds labels over the configured ones.
 */
export function endpointsToRun({ config, values }: Pick<MainInput, 'config' | 'values'>): EndpointConfig[] {
  const names = (values.endpoint ?? []) as string[];
  if (names.length === 0 && config.manager.endpoints.length === 0) {
    throw new Error('--endpoint NAME is required (manager.endpoints lists no endpoint to run)');
  }
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
  const chosen = names.length > 0 ? names : config.manager.endpoints.map((e) => e.name);
  return chosen.map((name) => {
    if (!ENDPOINT_PATTERN.test(name)) throw new Error(`--endpoint '${name}' is not a valid endpoint name`);
    const configured = config.manager.endpoints.find((e) => e.name === name);
    return {
      name, task_types: requested.length ? requested : configured?.task_types ?? config.task_types,
      labels: { ...(configured?.labels ?? config.manager.labels), ...given },
    };
  });
}

/** Starts the endpoint managers, each with its own broker connection and no database. */
export async function runManagers(input: MainInput): Promise<ShutdownStep[]> {
  const { config, logger } = input;
  requireSharedTransport(config);
  const endpoints = endpointsToRun(input);
  const managers = await startEndpointManagers(config, logger, new Connections(config, logger), endpoints);
  return managerShutdownSteps(config, managers);
}
