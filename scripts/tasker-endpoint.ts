#!/usr/bin/env node
import { main } from './main';
import { MANAGER_OPTIONS, runManagers } from './managers';

/**
 * `tasker-endpoint [--config FILE] [--endpoint NAME ...] [--tasktype T ...] [--label K=V ...]`, or
 * `--version`: the entry point of the endpoint package (docs/endpoint-host.md), bundled into one file
 * by `npm run pack:endpoint`. As `npm run manager`, configured by a YAML file of one's own (`--config`
 * or `TASKER_CONFIG`) and the `TASKER_` environment instead of a mode of config/.
 */
main('tasker-endpoint', MANAGER_OPTIONS, runManagers, undefined, { ownConfigFile: true });
