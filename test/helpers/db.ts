/**
 * Test databases. Each test file gets its own: an in-memory PGlite database, or, when
 * TEST_DATABASE_URL is set, a fresh schema on the real PostgreSQL server, dropped at teardown.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MIGRATIONS, openStore, PgliteDb, PostgresDb, type Db } from '../../src/store/index.js';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;

export type Backend = 'pglite' | 'postgres';

/**
 * The backends every store-dependent test runs on: the embedded PGlite always, the real
 * PostgreSQL server as well when TEST_DATABASE_URL is set (as CI sets it). Use as
 * `for (const backend of BACKENDS) t.test(backend, async (t) => { const tdb = await openTestDb(backend); ... })`.
 */
export const BACKENDS: readonly Backend[] = TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

/**
 * The backend of the scale tests (hundreds of connections, thousands of writes, populations of
 * people): the real PostgreSQL when TEST_DATABASE_URL is set (CI), else the embedded PGlite (npm
 * test on a bare machine). They run once, so the suite stays short; what they check at scale is
 * checked on both backends in small by the other tests.
 */
export const SCALE_BACKENDS: readonly Backend[] = TEST_DATABASE_URL ? ['postgres'] : ['pglite'];

export interface TestDb {
  readonly db: Db;
  /** Connection settings for a second store on the same database (restart tests). */
  readonly options: { databaseUrl?: string; schema?: string; dataDir?: string };
  close(): Promise<void>;
}

let template: Promise<Blob> | undefined;

/**
 * A migrated, empty PGlite data directory, made once and kept in the temporary directory under
 * the hash of the migrations, so that each test file copies it instead of running initdb
 * (about 1.5 s against 5 s on a busy 2-core machine).
 */
function migratedTemplate(): Promise<Blob> {
  template ??= (async () => {
    const version = (JSON.parse(readFileSync(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const hash = createHash('sha256').update(version).update(JSON.stringify(MIGRATIONS)).digest('hex').slice(0, 16);
    const file = join(tmpdir(), `county-hie-test-pglite-${hash}.tar`);
    try {
      return new Blob([readFileSync(file)]);
    } catch {
      const db = (await openStore({})) as PgliteDb;
      const blob = await db.snapshot();
      await db.close();
      // Written under a private name, then renamed: parallel test files never read half a file.
      const part = `${file}.${process.pid}`;
      writeFileSync(part, Buffer.from(await blob.arrayBuffer()));
      renameSync(part, file);
      return blob;
    }
  })();
  return template;
}

/** Opens an isolated, migrated database: in-memory PGlite (or in dataDir), or a fresh schema on PostgreSQL. */
export async function openTestDb(backend: Backend = 'pglite', dataDir?: string): Promise<TestDb> {
  if (backend === 'pglite' || !TEST_DATABASE_URL) {
    const db = await openStore(dataDir ? { dataDir } : { snapshot: await migratedTemplate() });
    return { db, options: { dataDir }, close: () => db.close() };
  }
  const { schema, drop } = await freshSchema();
  const db = await openStore({ databaseUrl: TEST_DATABASE_URL, schema, poolMax: 5 });
  return {
    db,
    options: { databaseUrl: TEST_DATABASE_URL, schema },
    async close() {
      await db.close();
      await drop();
    },
  };
}

/** A new schema of its own on the real PostgreSQL server, and how to drop it. */
async function freshSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`CREATE SCHEMA ${schema}`);
  return { schema, drop: () => run(`DROP SCHEMA ${schema} CASCADE`) };
}

/** An empty database, no migration applied (migration tests), and how to drop it. */
export async function openEmptyTestDb(backend: Backend = 'pglite'): Promise<{ db: Db; close(): Promise<void> }> {
  if (backend === 'pglite' || !TEST_DATABASE_URL) {
    const db = await PgliteDb.open(undefined);
    return { db, close: () => db.close() };
  }
  const { schema, drop } = await freshSchema();
  const db = new PostgresDb(TEST_DATABASE_URL, { max: 2, schema });
  return {
    db,
    async close() {
      await db.close();
      await drop();
    },
  };
}
