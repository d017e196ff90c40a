/**
 * The audit acceptance points through HTTP, as a HIS client: one read → exactly one AuditEvent
 * naming the client, its institution and the patient; a search returning 40 Observations of
 * 3 patients names those 3 patients.
 */
import t from 'tap';
import type { AuditEvent, Bundle, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';

const TOWNSHIP = '1233042447102341XF';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const his = { authorization: `Bearer ${await ta.token('township1-his')}` };
    const auditor = { authorization: `Bearer ${await ta.token('auditor')}` };
    const entry = [];
    for (let p = 0; p < 3; p++) {
      entry.push({ fullUrl: `urn:uuid:00000000-0000-4000-8000-00000000000${p}`, resource: { resourceType: 'Patient', name: [{ family: `P${p}` }] }, request: { method: 'POST', url: 'Patient' } });
    }
    for (let i = 0; i < 40; i++) {
      entry.push({
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, subject: { reference: `urn:uuid:00000000-0000-4000-8000-00000000000${i % 3}` } },
        request: { method: 'POST', url: 'Observation' },
      });
    }
    const seeded = await ta.app.inject({ method: 'POST', url: '/fhir', headers: { ...FHIR_HEADERS, ...his }, payload: { resourceType: 'Bundle', type: 'transaction', entry } });
    t.equal(seeded.statusCode, 200);
    const patients = ((seeded.json() as Bundle).entry ?? []).slice(0, 3).map((e) => `Patient/${(e.resource as Patient).id}`);
    const count = async () => (await ta.tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_event')).rows[0].n;

    t.test('one read, one AuditEvent', async (t) => {
      const before = await count();
      const r = await ta.app.inject({ method: 'GET', url: `/fhir/${patients[1]}`, headers: his });
      t.equal(r.statusCode, 200);
      t.equal(await count(), before + 1, 'exactly one');
      const found = await ta.app.inject({ method: 'GET', url: `/fhir/AuditEvent?patient=${patients[1]}&subtype=read`, headers: auditor });
      const events = ((found.json() as Bundle).entry ?? []).map((e) => e.resource as AuditEvent);
      t.equal(events.length, 1);
      const ev = events[0];
      t.equal(ev.agent?.[0].who?.identifier?.value, 'township1-his', 'the client');
      t.equal(ev.agent?.find((a) => a.who?.type === 'Organization')?.who?.identifier?.value, TOWNSHIP, 'its institution');
      t.same(ev.entity?.filter((e) => e.role?.code === '1').map((e) => e.what?.reference), [patients[1]], 'the patient');
    });

    t.test('a search of 40 Observations of 3 patients names the 3 patients', async (t) => {
      const before = await count();
      const r = await ta.app.inject({ method: 'GET', url: '/fhir/Observation?code:text=glucose&_count=100', headers: his });
      t.equal(((r.json() as Bundle).entry ?? []).length, 40);
      t.equal(await count(), before + 1, 'one AuditEvent for the search');
      const found = await ta.app.inject({ method: 'GET', url: '/fhir/AuditEvent?subtype=search-type&agent=township1-his', headers: auditor });
      const ev = ((found.json() as Bundle).entry ?? []).map((e) => e.resource as AuditEvent)[0];
      t.same(ev.entity?.filter((e) => e.role?.code === '1').map((e) => e.what?.reference).sort(), [...patients].sort());
    });
  });
}
