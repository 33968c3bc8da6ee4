import type { DataSource } from 'typeorm';
import { createDataSource, openDatabase } from '../api/storage/database';
import { projectRoot } from '../config/loader';
import type { Config } from '../config/schema';
import type { Logger } from '../lib/logger';

/**
 * The server side's database. Apart from compose.ts on purpose: an endpoint manager's entry points (and
 * the endpoint package bundled from them) import compose.ts and must not pull in the storage code.
 */
export function openDb(config: Config, logger: Logger): Promise<DataSource> {
  return openDatabase(() => createDataSource(config.manager.db, projectRoot()), logger);
}
