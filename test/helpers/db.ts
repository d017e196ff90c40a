/**
 * Test databases. Each test file gets its own: an in-memory PGlite database, or, when
 * TEST_DATABASE_URL is set, a fresh schema on the real PostgreSQL server, dropped at teardown.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStore, type Db } from '../../src/store/index.js';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;

export type Backend = 'pglite' | 'postgres';

/**
 * The backends every store-dependent test runs on: the embedded PGlite always, the real
 * PostgreSQL server as well when TEST_DATABASE_URL is set (as CI sets it). Use as
 * `for (const backend of BACKENDS) t.test(backend, async (t) => { const tdb = await openTestDb(backend); ... })`.
 */
export const BACKENDS: readonly Backend[] = TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDb {
  readonly db: Db;
  /** Connection settings for a second store on the same database (restart tests). */
  readonly options: { databaseUrl?: string; schema?: string; dataDir?: string };
  close(): Promise<void>;
}

/** Opens an isolated, migrated database: in-memory PGlite (or in dataDir), or a fresh schema on PostgreSQL. */
export async function openTestDb(backend: Backend = 'pglite', dataDir?: string): Promise<TestDb> {
  if (backend === 'pglite' || !TEST_DATABASE_URL) {
    const db = await openStore({ dataDir });
    return { db, options: { dataDir }, close: () => db.close() };
  }
  const schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const db = await openStore({ databaseUrl: TEST_DATABASE_URL, schema, poolMax: 5 });
  return {
    db,
    options: { databaseUrl: TEST_DATABASE_URL, schema },
    async close() {
      await db.close();
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}
