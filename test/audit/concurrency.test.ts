import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { PostgresDb } from '../../src/store/index.js';
import { BACKENDS, openTestDb, TEST_DATABASE_URL } from '../helpers/db.js';
import { appendAuditEvents, configureAuditChains, recordAccess, verifyAuditChains } from '../../src/audit/index.js';
import { CLINIC, HIS, count, readOf, records } from './helpers.js';

t.test('postgres: concurrent transactions keep every chain valid and contiguous', { skip: TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const tdb = await openTestDb('postgres');
  const db = new PostgresDb(TEST_DATABASE_URL as string, { max: 24, schema: tdb.options.schema });
  t.teardown(async () => {
    await db.close();
    await tdb.close();
  });
  await configureAuditChains(db, { chains: 4, alg: 'sm3' });

  let committed = 0;
  const one = async (i: number) => {
    try {
      await db.tx(async (q) => {
        await recordAccess(q, HIS, [readOf(`Patient/c${i}`), ...records(1 + (i % 3))]);
        await sleep(Math.random() * 8);
        // A second append in the same transaction (a bundle: reads, then writes).
        await recordAccess(q, HIS, [readOf(`Patient/c${i}`)]);
        if (i % 10 === 9) throw new Error('rolled back');
      });
      committed += 3 + (i % 3);
    } catch (e) {
      if ((e as Error).message !== 'rolled back') throw e;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: 300 }, (_, i) => one(i)));
  t.comment(`300 transactions on 24 connections and 4 chains in ${Date.now() - started} ms`);

  const r = await verifyAuditChains(db);
  t.match(r, { ok: true, checked: committed });
  const { rows } = await db.query<{ chain: number; n: number; max: number; head: number }>(
    `SELECT e.chain, count(*)::int AS n, max(e.seq)::int AS max, h.seq::int AS head
       FROM audit_event e JOIN audit_chain h USING (chain) GROUP BY e.chain, h.seq ORDER BY e.chain`,
  );
  t.equal(rows.length, 4, 'every active chain took appends');
  for (const c of rows) t.ok(c.n === c.max && c.max === c.head, `chain ${c.chain}: seq 1..${c.head} without gaps`);
  // The two appends of each transaction share a chain: consecutive seqs, same chain.
  const split = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT patient_refs[1] AS p, count(DISTINCT chain) AS c FROM audit_event WHERE patient_refs[1] LIKE 'Patient/c%' GROUP BY 1) x WHERE c > 1`,
  );
  t.equal(split.rows[0].n, 0);
});

for (const backend of BACKENDS) {
  t.test(`${backend}: audits outside a transaction share group transactions, each caller answered after its commit`, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const db = tdb.db;
    await configureAuditChains(db, { chains: 4, alg: 'sm3' });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => appendAuditEvents(db, i % 2 ? HIS : CLINIC, [readOf(`Patient/g${i}`)])));
    t.equal(new Set(results.map((r) => r?.ids[0])).size, 100, 'every caller got its own event');
    // Each caller's event is already committed when its call resolves: all 100 are there.
    t.equal(await count(db, `patient_refs[1] LIKE 'Patient/g%'`), 100);
    const groups = await db.query<{ n: number }>(`SELECT count(DISTINCT (chain, recorded))::int AS n FROM audit_event WHERE patient_refs[1] LIKE 'Patient/g%'`);
    t.ok(groups.rows[0].n < 10, `100 callers in ${groups.rows[0].n} transactions`);
    // Each event keeps its own caller's columns.
    const clinic = await count(db, `patient_refs[1] LIKE 'Patient/g%' AND client_id = $1 AND user_id = $2`, [CLINIC.clientId, CLINIC.userId]);
    t.equal(clinic, 50);
    t.match(await verifyAuditChains(db), { ok: true });
  });
}
