import t from 'tap';
import type { Observation } from '@medplum/fhirtypes';
import { readCurrent, readVersion, writeVersions } from '../../src/store/index.js';
import { loadBaseDefinitions } from '../../src/fhir/definitions.js';
import { BACKENDS, openTestDb } from '../helpers/db.js';

loadBaseDefinitions();

const obs = (value: number): Observation => ({
  resourceType: 'Observation',
  id: 'o1',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }], text: 'HbA1c' },
  subject: { reference: 'Patient/p1' },
  effectiveDateTime: '2024-03-01T08:30:00+08:00',
  valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    t.test('versions are kept and index rows follow the current version', async (t) => {
      const tdb = await openTestDb(backend);
      t.teardown(() => tdb.close());
      const { db } = tdb;
      const [rid] = await db.tx((q) =>
        writeVersions(q, [{ type: 'Observation', id: 'o1', versionId: 1, lastUpdated: '2024-03-01T00:00:00.000Z', method: 'POST', resource: obs(6.8) }]),
      );
      await db.tx((q) =>
        writeVersions(q, [{ rid, type: 'Observation', id: 'o1', versionId: 2, lastUpdated: '2024-03-02T00:00:00.000Z', method: 'PUT', resource: obs(7.1) }]),
      );
      const cur = await readCurrent(db, 'Observation', 'o1');
      t.equal(cur?.versionId, 2);
      t.equal(JSON.parse(cur?.content ?? '{}').valueQuantity.value, 7.1);
      const v1 = await readVersion(db, 'Observation', 'o1', 1);
      t.equal(JSON.parse(v1?.content ?? '{}').valueQuantity.value, 6.8, 'version 1 unchanged');

      const q = await db.query<{ value: string }>(`SELECT value::text FROM sp_quantity WHERE rid = $1 AND code = 'value-quantity'`, [rid]);
      t.same(q.rows.map((r) => Number(r.value)), [7.1], 'only the current value is indexed');
      const tok = await db.query<{ system: string; value: string }>(`SELECT system, value FROM sp_token WHERE rid = $1 AND code = 'code'`, [rid]);
      t.same(tok.rows, [{ system: 'http://loinc.org', value: '4548-4' }]);
      const ref = await db.query(`SELECT target_type, target_id FROM sp_reference WHERE rid = $1 AND code = 'subject'`, [rid]);
      t.same(ref.rows, [{ target_type: 'Patient', target_id: 'p1' }]);
      const d = await db.query<{ lo: Date }>(`SELECT lo FROM sp_date WHERE rid = $1 AND code = 'date'`, [rid]);
      t.equal(d.rows[0].lo.toISOString(), '2024-03-01T00:30:00.000Z', 'zone honoured');

      await db.tx((q) => writeVersions(q, [{ rid, type: 'Observation', id: 'o1', versionId: 3, lastUpdated: '2024-03-03T00:00:00.000Z', method: 'DELETE' }]));
      const gone = await readCurrent(db, 'Observation', 'o1');
      t.equal(gone?.deleted, true);
      const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM sp_token WHERE rid = $1`, [rid]);
      t.equal(left.rows[0].n, 0, 'a deleted resource has no index rows');
    });
  });
}
