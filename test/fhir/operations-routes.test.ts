/**
 * $validate and search handling over HTTP: the routes around the transport-agnostic functions.
 */
import t from 'tap';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';

const CN_PATIENT = 'https://fhir.county-hie.cn/StructureDefinition/cn-patient';
const ID_CARD = 'urn:oid:2.16.156.10011.1.3';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;

    t.test('$validate on the type: valid, invalid, wrong type', async (t) => {
      const good = await app.inject({
        method: 'POST',
        url: '/fhir/Patient/$validate',
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Patient', meta: { profile: [CN_PATIENT] }, identifier: [{ system: ID_CARD, value: '11010519491231002X' }] },
      });
      t.equal(good.statusCode, 200);
      t.notOk((good.json() as OperationOutcome).issue.some((i) => i.severity === 'error'));
      const bad = await app.inject({
        method: 'POST',
        url: '/fhir/Patient/$validate',
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Patient', meta: { profile: [CN_PATIENT] }, identifier: [{ system: ID_CARD, value: '110105194912310021' }] },
      });
      t.equal(bad.statusCode, 200, '$validate reports problems in a 200 OperationOutcome');
      const issue = (bad.json() as OperationOutcome).issue.find((i) => i.severity === 'error');
      t.same(issue?.expression, ['Patient.identifier[0].value']);
      const noProfile = await app.inject({
        method: 'POST',
        url: '/fhir/Patient/$validate?profile=' + encodeURIComponent(CN_PATIENT),
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Patient' },
      });
      t.ok((noProfile.json() as OperationOutcome).issue.some((i) => i.severity === 'error' && i.expression?.[0] === 'Patient.identifier'), 'profile from the URL applied');
      const wrong = await app.inject({ method: 'POST', url: '/fhir/Patient/$validate', headers: FHIR_HEADERS, payload: { resourceType: 'Observation' } });
      t.equal(wrong.statusCode, 400);
      const before = (await ta.tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource')).rows[0].n;
      t.equal(before, 0, '$validate stores nothing');
    });

    t.test('$validate on an instance validates the stored version', async (t) => {
      const created = await app.inject({ method: 'POST', url: '/fhir/Basic', headers: FHIR_HEADERS, payload: { resourceType: 'Basic', code: { text: 'x' } } });
      const id = created.json().id as string;
      const r = await app.inject({ method: 'GET', url: `/fhir/Basic/${id}/$validate` });
      t.equal(r.statusCode, 200);
      t.equal((r.json() as OperationOutcome).issue[0].severity, 'information');
      const missing = await app.inject({ method: 'GET', url: '/fhir/Basic/nope/$validate' });
      t.equal(missing.statusCode, 404);
    });

    t.test('unknown search parameters: 400, or ignored and reported with handling=lenient', async (t) => {
      const strict = await app.inject({ method: 'GET', url: '/fhir/Patient?nonsense=1' });
      t.equal(strict.statusCode, 400);
      t.same((strict.json() as OperationOutcome).issue[0].expression, ['nonsense']);
      const lenient = await app.inject({ method: 'GET', url: '/fhir/Patient?nonsense=1', headers: { prefer: 'handling=lenient' } });
      t.equal(lenient.statusCode, 200);
      const outcomeEntry = lenient.json().entry?.find((e: { search?: { mode?: string } }) => e.search?.mode === 'outcome');
      t.match(JSON.stringify(outcomeEntry), /nonsense/);
    });

    t.test('the CapabilityStatement lists $validate and the loaded profiles', async (t) => {
      const cs = (await app.inject({ method: 'GET', url: '/fhir/metadata' })).json();
      const patient = cs.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
      t.ok(patient.operation.some((o: { name: string }) => o.name === 'validate'));
      t.ok(patient.supportedProfile.includes(CN_PATIENT));
      const org = cs.rest[0].resource.find((r: { type: string }) => r.type === 'Organization');
      t.ok(org.searchParam.some((p: { name: string }) => p.name === 'level'), 'profile search parameters listed');
    });
  });
}
