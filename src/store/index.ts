/**
 * The store: PostgreSQL persistence behind one interface, on a server (pg) or embedded (PGlite).
 */
import { PgliteDb, PostgresDb, type Db } from './db.js';
import { migrate } from './migrations.js';

export type { Db, Queryable, QueryResult } from './db.js';
export { PgliteDb, PostgresDb, StatementBatch, joinTransaction, isTransactionConflict } from './db.js';
export { INDEX_TABLES, MIGRATIONS, migrate, type IndexTable } from './migrations.js';
export { IndexRowSet, extractIndexRows, indexedParams, evalSearchParam, normalizeString, dateRange, numberRange, parseReference } from './index-rows.js';

export interface StoreOptions {
  readonly databaseUrl?: string;
  /** PGlite data directory; undefined with no databaseUrl means in memory. */
  readonly dataDir?: string;
  readonly poolMax?: number;
  /** PostgreSQL schema to use (tests isolate themselves in their own schema). */
  readonly schema?: string;
  /** PGlite only: start from this data directory snapshot (PgliteDb.snapshot). */
  readonly snapshot?: Blob;
}

/** Opens the database and brings its schema up to date. */
export async function openStore(options: StoreOptions): Promise<Db> {
  const db: Db = options.databaseUrl
    ? new PostgresDb(options.databaseUrl, { max: options.poolMax, schema: options.schema })
    : await PgliteDb.open(options.dataDir, options.snapshot);
  try {
    await migrate(db);
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
  return db;
}
export {
  readCurrent,
  readByRids,
  readVersion,
  writeVersions,
  toStoredRow,
  ROW_COLUMNS,
  type StoredRow,
  type RawRow,
  type VersionWrite,
  type WriteMethod,
} from './resources.js';
