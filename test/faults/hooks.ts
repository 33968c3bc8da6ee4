import { unreachableServices } from '../support/service-gate';
import { ensureServices } from '../support/services';

/** Whatever a fault test did, the services are up again when the suite ends (if they were up when it began). */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    if ((await unreachableServices()).length === 0) await ensureServices();
  },
};
