import t from 'tap';
import { INDEX_TABLES, MIGRATIONS, migrate } from '../../src/store/index.js';
import { BACKENDS, openTestDb } from '../helpers/db.js';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    t.test('migrations create every table and are idempotent', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      const { rows } = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migration');
      t.equal(rows[0].n, MIGRATIONS.length);
      t.equal(await migrate(tdb.db), 0, 'a second run applies nothing');
      for (const table of ['resource', 'resource_version', 'audit_event', 'subscription_event', ...INDEX_TABLES]) {
        const r = await tdb.db.query(`SELECT count(*) FROM ${table}`);
        t.equal(r.rows.length, 1, `${table} exists`);
      }
    });

    t.test('a failed transaction leaves nothing behind', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await t.rejects(
        tdb.db.tx(async (q) => {
          await q.query(`INSERT INTO resource (type, id, version_id, last_updated, content) VALUES ('Patient', 'a', 1, now(), '{}')`);
          throw new Error('boom');
        }),
      );
      const { rows } = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource');
      t.equal(rows[0].n, 0);
    });
  });
}
