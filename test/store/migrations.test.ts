import t from 'tap';
import { INDEX_TABLES, MIGRATIONS, migrate } from '../../src/store/index.js';
import { numberEvents } from '../../src/subscriptions/state.js';
import { BACKENDS, openEmptyTestDb, openTestDb } from '../helpers/db.js';

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

    t.test('15: subscription events numbered before it keep their numbers; later ones follow', async (t) => {
      const { db, close } = await openEmptyTestDb(backend);
      t.teardown(close);
      await db.exec(`CREATE TABLE schema_migration (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      for (const m of MIGRATIONS.filter((x) => x.version < 15)) {
        await db.exec(m.sql);
        await db.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [m.version, m.name]);
      }
      await db.query(`INSERT INTO subscription_state (id, status, resource_types, channel, spec, delivered_through) VALUES ('s1', 'active', '{Observation}', 'rest-hook', '{}', 1)`);
      await db.query(`INSERT INTO subscription_counter (id, events_count) VALUES ('s1', 2)`);
      for (const n of [1, 2]) {
        await db.query(`INSERT INTO subscription_event (subscription_id, event_number, created, type, id, version_id, action) VALUES ('s1', $1, now(), 'Observation', $2, 1, 'create')`, [n, `o${n}`]);
      }
      t.equal(await migrate(db), MIGRATIONS.filter((x) => x.version >= 15).length, 'the rest applied');
      await db.query(`INSERT INTO subscription_event (subscription_id, created, type, id, version_id, action) VALUES ('s1', now(), 'Observation', 'o3', 1, 'create')`);
      t.equal(await numberEvents(db, 's1'), 3, 'the new event is number 3');
      const { rows } = await db.query<{ id: string; event_number: string }>('SELECT id, event_number FROM subscription_event ORDER BY event_number');
      t.same(rows.map((r) => [r.id, Number(r.event_number)]), [['o1', 1], ['o2', 2], ['o3', 3]]);
      await t.rejects(db.query(`UPDATE subscription_event SET event_number = 1 WHERE id = 'o3'`), 'one number per subscription once');
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
