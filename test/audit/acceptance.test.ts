import t from 'tap';
import type { AuditEvent, Observation, Patient } from '@medplum/fhirtypes';
import { loadConfig } from '../../src/config.js';
import { createFhirServices, SYSTEM_CONTEXT, type RequestContext } from '../../src/fhir/index.js';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { TEST_BASE } from '../helpers/app.js';
import { verifyAuditChains } from '../../src/audit/index.js';

const reader: RequestContext = {
  channel: 'rest',
  clientId: 'his-town-clinic',
  institution: 'org-town-clinic',
  sourceIp: '10.9.8.7',
  scopes: ['system/Patient.rs', 'system/Observation.rs'],
};

interface Row {
  client_id: string;
  institution: string;
  patient_refs: string[];
  subtype: string;
  content: string;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent' });
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const { repository } = await createFhirServices(config, tdb.db);
    const patients: string[] = [];
    for (const name of ['张', '李', '王']) {
      const r = await repository.create({ resourceType: 'Patient', name: [{ family: name }] } as Patient, SYSTEM_CONTEXT);
      patients.push(`Patient/${r.id}`);
    }
    for (let i = 0; i < 40; i++) {
      const obs: Observation = { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, subject: { reference: patients[i % 3] }, valueQuantity: { value: 5 + i / 10, unit: 'mmol/L' } };
      await repository.create(obs, SYSTEM_CONTEXT);
    }
    const latest = async (): Promise<Row[]> =>
      (await tdb.db.query<Row>(`SELECT client_id, institution, patient_refs, subtype, content FROM audit_event WHERE client_id = 'his-town-clinic' ORDER BY recorded, chain, seq`)).rows;

    t.test("reading a patient's record produces exactly one AuditEvent naming the client, the institution and the patient", async (t) => {
      const before = (await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_event')).rows[0].n;
      await repository.read('Patient', patients[1].slice('Patient/'.length), reader);
      const after = (await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_event')).rows[0].n;
      t.equal(after, before + 1);
      const [row] = await latest();
      t.match(row, { client_id: 'his-town-clinic', institution: 'org-town-clinic', subtype: 'read', patient_refs: [patients[1]] });
      const ev = JSON.parse(row.content) as AuditEvent;
      t.equal(ev.agent?.[0].who?.identifier?.value, 'his-town-clinic');
      t.equal(ev.agent?.find((a) => a.who?.type === 'Organization')?.who?.identifier?.value, 'org-town-clinic', 'the institution is an agent of its own');
      t.same(ev.entity?.filter((e) => e.role?.code === '1').map((e) => e.what?.reference), [patients[1]]);
    });

    t.test('a search returning 40 Observations of 3 patients names those 3 patients', async (t) => {
      const bundle = await repository.search('Observation', { _count: '100' }, reader);
      t.equal(bundle.entry?.length, 40);
      const rows = await latest();
      const row = rows[rows.length - 1];
      t.equal(row.subtype, 'search-type');
      t.same([...row.patient_refs].sort(), [...patients].sort());
      const ev = JSON.parse(row.content) as AuditEvent;
      t.same(ev.entity?.filter((e) => e.role?.code === '1').map((e) => e.what?.reference).sort(), [...patients].sort(), 'one entity per patient');
      t.equal(ev.entity?.filter((e) => e.role?.code === '4').length, 40, 'and the 40 Observations');
    });

    t.test('the trail of all this verifies', async (t) => {
      // 43 accesses, and for each of the 3 patients the creation of its Person and the MPI decision.
      t.match(await verifyAuditChains(tdb.db), { ok: true, checked: 51 });
    });
  });
}
