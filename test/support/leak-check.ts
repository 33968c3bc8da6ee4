/**
 * Root hook: after all tests, the test process itself must hold no sockets, servers or timers, so a
 * test that forgets to close a connection fails instead of hanging the run.
 */
const IGNORED = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'StatWatcher', 'SignalWrap', 'ProcessWrap']);

export const mochaHooks = {
  async afterAll(this: unknown): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const leaked = process.getActiveResourcesInfo().filter((r) => !IGNORED.has(r));
    // mocha's own timer for this hook is active while it runs.
    const timeouts = leaked.filter((r) => r === 'Timeout').length;
    const others = leaked.filter((r) => r !== 'Timeout');
    if (others.length > 0 || timeouts > 1) {
      throw new Error(`leaked handles after the tests: ${leaked.join(', ')}`);
    }
  },
};
