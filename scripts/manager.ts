import { main } from './main';
import { MANAGER_OPTIONS, runManagers } from './managers';

/**
 * `npm run manager -- [--endpoint NAME ...] --mode M [--tasktype T ...] [--label K=V ...]`: endpoint
 * managers in the foreground, each with its own broker connection, and no database. Without
 * `--endpoint`, every `manager.endpoints` entry. Task types default to the endpoint's entry in
 * `manager.endpoints`, else all; labels are the entry's (or `manager.labels`, `TASKER_LABELS`) with those
 * of `--label` over them.
 */
main('manager', MANAGER_OPTIONS, runManagers);
