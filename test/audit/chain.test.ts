import t from 'tap';
import type { AuditEvent } from '@medplum/fhirtypes';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { appendAuditEvents, configureAuditChains, recordAccess, sm3Available, verifyAuditChains } from '../../src/audit/index.js';
import { linkHash } from '../../src/audit/chain.js';
import { CLINIC, HIS, count, readOf, records, tamper } from './helpers.js';

t.test('SM3 is available in this runtime and differs from SHA-256', async (t) => {
  t.ok(sm3Available());
  const r = { chain: 0, seq: 1, alg: 'sm3', id: 'x', recorded: '2026-01-01T00:00:00.000Z', action: 'R', subtype: 'read', outcome: '0', clientId: null, institution: null, userId: null, sourceIp: null, purpose: null, patientRefs: [], entityRefs: [], content: '{}' };
  const sm3 = linkHash('0'.repeat(64), r);
  // GB/T 32905 test vector: SM3("abc").
  const { createHash } = await import('node:crypto');
  t.equal(createHash('sm3').update('abc').digest('hex'), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
  t.not(sm3, linkHash('0'.repeat(64), { ...r, alg: 'sha256' }));
  t.match(sm3, /^[0-9a-f]{64}$/);
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    t.test('one record per access, linked in its chain, with the searched facts as columns', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await recordAccess(tdb.db, CLINIC, [readOf('Patient/p1'), { interaction: 'search-type', outcome: '0', resources: ['Observation/o1', 'Observation/o2'], patients: ['Patient/p1', 'Patient/p2'], query: 'Observation?code=x' }]);
      const { rows } = await tdb.db.query<{ chain: number; seq: number; prev_hash: string; hash: string; alg: string; client_id: string; institution: string; user_id: string; source_ip: string; purpose: string; patient_refs: string[]; entity_refs: string[]; subtype: string; action: string; content: string }>(
        'SELECT * FROM audit_event ORDER BY seq',
      );
      t.equal(rows.length, 2);
      t.equal(rows[0].chain, rows[1].chain, 'one call, one chain');
      t.same(rows.map((r) => r.seq), [1, 2]);
      t.equal(rows[0].prev_hash, '0'.repeat(64));
      t.equal(rows[1].prev_hash, rows[0].hash);
      t.equal(rows[0].alg, 'sm3');
      t.match(rows[1], { client_id: 'his-town-clinic', institution: 'org-town-clinic', user_id: 'doctor-li', source_ip: '10.9.8.7', purpose: 'TREAT', subtype: 'search-type', action: 'E' });
      t.same(rows[1].patient_refs, ['Patient/p1', 'Patient/p2']);
      t.same(rows[1].entity_refs, ['Patient/p1', 'Patient/p2', 'Observation/o1', 'Observation/o2']);
      const ev = JSON.parse(rows[1].content) as AuditEvent;
      t.equal(ev.entity?.filter((e) => e.role?.code === '1').length, 2, 'one entity per patient');
      t.equal(ev.agent?.[0].who?.identifier?.value, 'his-town-clinic');
      t.equal(ev.agent?.find((a) => a.who?.type === 'Organization')?.who?.identifier?.value, 'org-town-clinic', 'the institution is an agent of its own');
      t.equal(ev.agent?.[0].network?.address, '10.9.8.7');
      t.equal(ev.agent?.[1].who?.identifier?.value, 'doctor-li');
      t.equal(ev.purposeOfEvent?.[0].coding?.[0].code, 'TREAT');
      const head = await tdb.db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_chain WHERE chain = $1', [rows[0].chain]);
      t.same(head.rows[0], { seq: 2, hash: rows[1].hash }, 'the head names the last link');
      t.match(await verifyAuditChains(tdb.db), { ok: true, checked: 2, chains: 8 });
    });

    t.test('token and HL7 message events', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await recordAccess(tdb.db, HIS, [
        { interaction: 'token', outcome: '0', resources: [], patients: [] },
        { interaction: 'message', outcome: '0', resources: ['Encounter/e1'], patients: ['Patient/p9'], messageType: 'ADT^A01', messageControlId: 'MSG0001' },
      ]);
      const { rows } = await tdb.db.query<{ content: string }>('SELECT content FROM audit_event ORDER BY seq');
      const [token, message] = rows.map((r) => JSON.parse(r.content) as AuditEvent);
      t.equal(token.type.code, '110114');
      t.equal(token.subtype?.[0].code, '110122');
      t.equal(message.type.code, '110107');
      t.equal(message.action, 'C');
      t.ok(message.subtype?.some((s) => s.code === 'ADT^A01'));
      t.ok(message.entity?.some((e) => e.what?.identifier?.value === 'MSG0001'));
    });

    t.test('a second append in the same transaction takes the same chain', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      const chains = await tdb.db.tx(async (q) => {
        const a = await appendAuditEvents(q, HIS, [readOf('Patient/a')]);
        const b = await appendAuditEvents(q, HIS, [readOf('Patient/b')]);
        return [a?.chain, b?.chain, b?.firstSeq];
      });
      t.equal(chains[0], chains[1]);
      t.equal(chains[2], 2);
    });

    t.test('a rolled-back transaction leaves neither record nor head change', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await t.rejects(
        tdb.db.tx(async (q) => {
          await recordAccess(q, HIS, [readOf('Patient/a')]);
          throw new Error('write failed');
        }),
      );
      t.equal(await count(tdb.db), 0);
      const { rows } = await tdb.db.query<{ n: number }>('SELECT max(seq)::int AS n FROM audit_chain');
      t.equal(rows[0].n, 0);
      t.ok((await verifyAuditChains(tdb.db)).ok);
    });

    t.test('the table refuses UPDATE, DELETE and TRUNCATE', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await recordAccess(tdb.db, HIS, [readOf('Patient/a')]);
      await t.rejects(tdb.db.query(`UPDATE audit_event SET outcome = '8'`), /append-only/);
      await t.rejects(tdb.db.query('DELETE FROM audit_event'), /append-only/);
      await t.rejects(tdb.db.query('TRUNCATE audit_event'), /append-only/);
      t.equal(await count(tdb.db), 1);
    });

    t.test('10,000 events verify; an edited or deleted record is reported', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      const db = tdb.db;
      for (let i = 0; i < 10; i++) await recordAccess(db, i % 2 ? HIS : CLINIC, records(1000));
      const started = Date.now();
      const clean = await verifyAuditChains(db);
      t.match(clean, { ok: true, checked: 10_000, chains: 8 });
      t.notOk(clean.firstBroken);
      t.comment(`verified 10,000 events in ${Date.now() - started} ms`);

      // A link in the middle of a chain that holds several.
      const { rows: chainRows } = await db.query<{ chain: number; n: number }>('SELECT chain, count(*)::int AS n FROM audit_event GROUP BY chain ORDER BY n DESC LIMIT 1');
      const chain = chainRows[0].chain;
      const pick = async (seq: number) => (await db.query<{ id: string }>('SELECT id FROM audit_event WHERE chain = $1 AND seq = $2', [chain, seq])).rows[0].id;
      const edited = await pick(500);

      t.test('content edited', async (t) => {
        await tamper(db, `UPDATE audit_event SET content = replace(content, '"outcome":"0"', '"outcome":"4"') WHERE id = $1`, [edited]);
        t.match((await verifyAuditChains(db)).firstBroken, { chain, seq: 500, id: edited, reason: 'hash-mismatch' });
      });
      t.test('a searched column edited (patient removed)', async (t) => {
        const other = await pick(600);
        await tamper(db, `UPDATE audit_event SET patient_refs = '{}' WHERE id = $1`, [other]);
        const r = await verifyAuditChains(db, { chains: [chain] });
        t.match(r.reports[0].broken, { seq: 500 }, 'the first break of the chain is still the earlier one');
      });
      t.test('hash rewritten to match the edit', async (t) => {
        const tdb2 = await openTestDb(backend);
        t.teardown(() => tdb2.close());
        await recordAccess(tdb2.db, HIS, records(20));
        const { rows } = await tdb2.db.query<{ id: string; chain: number }>('SELECT id, chain FROM audit_event WHERE seq = 10');
        await tamper(tdb2.db, `UPDATE audit_event SET hash = repeat('a', 64) WHERE id = $1`, [rows[0].id]);
        t.match((await verifyAuditChains(tdb2.db)).firstBroken, { chain: rows[0].chain, seq: 10, id: rows[0].id, reason: 'hash-mismatch' });
      });
      t.test('a record deleted is reported at the next one', async (t) => {
        const tdb2 = await openTestDb(backend);
        t.teardown(() => tdb2.close());
        await recordAccess(tdb2.db, HIS, records(20));
        const { rows } = await tdb2.db.query<{ id: string; chain: number; seq: number }>('SELECT id, chain, seq FROM audit_event WHERE seq IN (7, 8) ORDER BY seq');
        await tamper(tdb2.db, 'DELETE FROM audit_event WHERE id = $1', [rows[0].id]);
        t.match((await verifyAuditChains(tdb2.db)).firstBroken, { chain: rows[0].chain, seq: 8, id: rows[1].id, reason: 'missing-record' });
      });
      t.test('the last record deleted is reported against the head', async (t) => {
        const tdb2 = await openTestDb(backend);
        t.teardown(() => tdb2.close());
        await recordAccess(tdb2.db, HIS, records(5));
        const { rows } = await tdb2.db.query<{ chain: number }>('SELECT chain FROM audit_event WHERE seq = 5');
        await tamper(tdb2.db, 'DELETE FROM audit_event WHERE seq = 5');
        const r = await verifyAuditChains(tdb2.db);
        t.match(r.firstBroken, { chain: rows[0].chain, seq: 5, reason: 'missing-record' });
        t.equal(r.checked, 4);
      });
    });

    t.test('chains follow the configuration; SHA-256 chains verify too', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      await recordAccess(tdb.db, HIS, records(3));
      await configureAuditChains(tdb.db, { chains: 2, alg: 'sha256' });
      for (let i = 0; i < 20; i++) await recordAccess(tdb.db, HIS, records(2));
      const { rows } = await tdb.db.query<{ chain: number; alg: string }>(`SELECT DISTINCT chain, alg FROM audit_event WHERE alg = 'sha256' ORDER BY chain`);
      t.ok(rows.every((r) => r.chain < 2), 'only the active chains grow');
      const r = await verifyAuditChains(tdb.db);
      t.match(r, { ok: true, checked: 43, chains: 8 });
      t.equal(r.reports.filter((c) => c.active).length, 2);
    });
  });
}
