import { unreachableServices } from '../support/service-gate';
import { ensureServices } from '../support/services';

// The fault suites were written for, and check, handlers running in the manager's own process (a handler that
// crashes takes its manager down and is retried; a standalone backlog drains at in-process speed). Their
// processes run that way (manager.isolation: none); isolated runs have their own suites (integration/isolation.test.ts,
// and faults/isolated.test.ts for a killed manager and a broker closing connections under isolated runs).
process.env.TASKER_MANAGER__ISOLATION ??= 'none';

/** Whatever a fault test did, the services are up again when the suite ends (if they were up when it began). */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    if ((await unreachableServices()).length === 0) await ensureServices();
  },
};
