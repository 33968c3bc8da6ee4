import { ensureServices } from '../support/services';

/** Whatever a fault test did, the services are up again when the suite ends. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await ensureServices();
  },
};
