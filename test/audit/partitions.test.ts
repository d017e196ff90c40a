import t from 'tap';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { appendAuditEvents, listAuditPartitions, loadAuditConfig, maintainAuditPartitions, prepareAudit, recordAccess, verifyAuditChains } from './imports.js';
import { HIS, count, records, tamper } from './helpers.js';

function month(offset: number, at = new Date()): string {
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + offset, 1));
  return `audit_event_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    t.test('partitions of this month and the next are there after migration; start keeps two ahead', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      const before = (await listAuditPartitions(tdb.db)).map((p) => p.name);
      t.ok(before.includes(month(0)) && before.includes(month(1)) && before.includes('audit_event_default'));
      const setup = await prepareAudit(tdb.db, loadAuditConfig({ AUDIT_CHAINS: '4' }));
      t.same(setup.partitions.created, [month(2)]);
      t.equal(setup.alg, 'sm3');
      t.same((await maintainAuditPartitions(tdb.db, { retentionMonths: 180 })).created, [], 'idempotent');
      await recordAccess(tdb.db, HIS, records(5));
      const parts = await listAuditPartitions(tdb.db);
      t.equal(parts.find((p) => p.name === month(0))?.rows, 5, 'rows land in the partition of their month');
      const { rows } = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_chain WHERE active');
      t.equal(rows[0].n, 4);
    });

    t.test('rows caught by the default partition move to their month; retention drops old months and the chains still verify', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      const db = tdb.db;
      // Old months have no partition yet: their rows land in the default partition.
      for (const at of ['2025-01-15T08:00:00Z', '2025-02-15T08:00:00Z', '2025-03-15T08:00:00Z']) {
        for (let i = 0; i < 6; i++) await appendAuditEvents(db, HIS, records(10), { recorded: new Date(at) });
      }
      for (let i = 0; i < 4; i++) await appendAuditEvents(db, HIS, records(10), { recorded: new Date('2026-01-15T08:00:00Z') });
      t.equal((await listAuditPartitions(db)).find((p) => p.name === 'audit_event_default')?.rows, 220);

      // Keep everything: the stray months get partitions of their own.
      const kept = await maintainAuditPartitions(db, { retentionMonths: 1200 });
      t.same(kept.created.slice(0, 4), ['audit_event_2025_01', 'audit_event_2025_02', 'audit_event_2025_03', 'audit_event_2026_01']);
      t.same(kept.dropped, []);
      t.equal((await listAuditPartitions(db)).find((p) => p.name === 'audit_event_default')?.rows, 0);
      t.match(await verifyAuditChains(db), { ok: true, checked: 220 });

      // Retention of six months at 2025-08-20 drops January (before 2025-02-01) only.
      const r = await maintainAuditPartitions(db, { retentionMonths: 6, now: new Date('2025-08-20T00:00:00Z') });
      t.same(r.dropped, ['audit_event_2025_01']);
      t.equal(await count(db), 160);
      const after = await verifyAuditChains(db);
      t.match(after, { ok: true, checked: 160 });
      t.ok(after.reports.some((c) => c.anchorSeq > 0), 'chains now start at the last dropped link');

      // With the default retention (180 months) nothing more goes; six months later, 2025 goes
      // (with the empty months that the run "at 2025-08-20" created ahead).
      t.same((await maintainAuditPartitions(db, { retentionMonths: 180 })).dropped, []);
      const later = await maintainAuditPartitions(db, { retentionMonths: 6, now: new Date('2026-06-15T00:00:00Z') });
      t.same(later.dropped, ['audit_event_2025_02', 'audit_event_2025_03', 'audit_event_2025_08', 'audit_event_2025_09', 'audit_event_2025_10']);
      t.match(await verifyAuditChains(db), { ok: true, checked: 40 });

      // New events continue the chains; tampering is still caught after the anchor.
      await recordAccess(db, HIS, records(10));
      t.match(await verifyAuditChains(db), { ok: true, checked: 50 });
      const { rows } = await db.query<{ id: string; chain: number; seq: number }>('SELECT id, chain, seq FROM audit_event ORDER BY recorded, seq LIMIT 1');
      await tamper(db, `UPDATE audit_event SET client_id = 'someone-else' WHERE id = $1`, [rows[0].id]);
      t.match((await verifyAuditChains(db)).firstBroken, { chain: rows[0].chain, seq: rows[0].seq, reason: 'hash-mismatch' });
    });

    t.test('time never goes backwards along a chain', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await tdb.db.query('UPDATE audit_chain SET active = chain = 0');
      await appendAuditEvents(tdb.db, HIS, records(1), { recorded: new Date('2025-05-01T00:00:00Z') });
      await appendAuditEvents(tdb.db, HIS, records(1), { recorded: new Date('2025-04-01T00:00:00Z') });
      const { rows } = await tdb.db.query<{ recorded: Date }>('SELECT recorded FROM audit_event ORDER BY seq');
      t.same(rows.map((r) => new Date(r.recorded).toISOString()), ['2025-05-01T00:00:00.000Z', '2025-05-01T00:00:00.000Z']);
    });
  });
}
