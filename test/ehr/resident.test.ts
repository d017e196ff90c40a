/**
 * Residents' access: a patient-facing app with patient/*.rs and the resident in its token reads the
 * resident's own record (every institution's part of it) and the log of who read it, and nothing else.
 */
import t from 'tap';
import type { AuditEvent, Bundle, Patient, Resource } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createOverRest as post, createTestApp, entryRefs as ids, FHIR_HEADERS } from '../helpers/app.js';
import { ID_CARD_SYSTEM, mrnSystem } from '../../src/fhir/systems.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP = '1233042447102341XF';
const ID = '330424195603120047'; // 1956-03-12, female


for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const county = { authorization: `Bearer ${await ta.token('county-his')}` };
    const township = { authorization: `Bearer ${await ta.token('township1-his')}` };
    const resident = (mrnSys: string, mrn: string): Patient => ({ resourceType: 'Patient', identifier: [{ system: mrnSys, value: mrn }, { system: ID_CARD_SYSTEM, value: ID }], name: [{ family: '吴', given: ['秀英'] }], gender: 'female', birthDate: '1956-03-12' });
    const rc = await post<Patient>(ta, resident(mrnSystem(COUNTY), 'C-5'), county);
    const rt = await post<Patient>(ta, resident(mrnSystem(TOWNSHIP), 'T-5'), township);
    const other = await post<Patient>(ta, { resourceType: 'Patient', identifier: [{ system: mrnSystem(COUNTY), value: 'C-6' }], name: [{ family: '郑', given: ['国强'] }], gender: 'male', birthDate: '1949-10-01' }, county);
    const obs = (patient: string, value: number) => ({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] }, subject: { reference: `Patient/${patient}` }, valueQuantity: { value, unit: 'mmol/L' } }) as Resource;
    const own1 = await post(ta, obs(rc.id as string, 6.1), county);
    const own2 = await post(ta, obs(rt.id as string, 5.9), township);
    const others = await post(ta, obs(other.id as string, 7.3), county);
    // The county hospital reads her record: she will see that in her log.
    t.equal((await app.inject({ url: `/fhir/Patient/${rc.id}`, headers: { ...county, 'x-user-id': 'dr-li' } })).statusCode, 200);

    const tokenFor = (patient?: string, client = 'resident-app') =>
      ta.anonymous({
        method: 'POST',
        url: '/auth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}` },
        payload: `grant_type=client_credentials${patient ? `&patient=${encodeURIComponent(patient)}` : ''}`,
      });

    t.test('the token names the resident', async (t) => {
      t.equal((await tokenFor()).statusCode, 400, 'a resident app must name the resident');
      t.equal((await tokenFor('110101199001010011')).statusCode, 400, 'an unknown resident');
      t.equal((await tokenFor(ID, 'county-his')).statusCode, 400, 'patient is for resident apps only');
      const ok = await tokenFor(ID);
      t.equal(ok.statusCode, 200);
      t.equal(ok.json().scope, 'patient/*.rs');
      const byRef = await tokenFor(`Patient/${rt.id}`);
      t.equal(byRef.statusCode, 200);
    });

    const bearer = { authorization: `Bearer ${(await tokenFor(ID)).json().access_token as string}` };
    const get = (url: string) => app.inject({ url, headers: bearer });

    t.test('reads her own record, from every institution', async (t) => {
      t.equal((await get(`/fhir/Patient/${rc.id}`)).statusCode, 200);
      t.equal((await get(`/fhir/Patient/${rt.id}`)).statusCode, 200);
      t.equal((await get(`/fhir/Observation/${own2.id}`)).statusCode, 200);
      t.same(ids((await get('/fhir/Observation')).json()).sort(), [`Observation/${own1.id}`, `Observation/${own2.id}`].sort());
      t.same(ids((await get('/fhir/Patient')).json()).sort(), [`Patient/${rc.id}`, `Patient/${rt.id}`].sort());
      // The search itself is confined to her record, so pages are full and next links lead on.
      const first = (await get('/fhir/Observation?_count=1')).json<Bundle>();
      t.equal(first.entry?.length, 1);
      const next = first.link?.find((l) => l.relation === 'next')?.url?.replace('http://gateway.test', '');
      t.ok(next, 'a next page');
      const second = (await get(next as string)).json<Bundle>();
      t.same([...ids(first), ...ids(second)].sort(), [`Observation/${own1.id}`, `Observation/${own2.id}`].sort());
      const all = ids((await get(`/fhir/Patient/${rc.id}/$everything`)).json());
      t.ok(all.includes(`Observation/${own1.id}`) && all.includes(`Observation/${own2.id}`));
      t.notOk(all.includes(`Observation/${others.id}`));
      const hist = ids((await get('/fhir/_history?_count=500')).json());
      t.ok(hist.includes(`Observation/${own1.id}`));
      t.notOk(hist.includes(`Observation/${others.id}`));
      t.notOk(hist.includes(`Patient/${other.id}`));
    });

    t.test('and the log of who read it', async (t) => {
      const r = await get(`/fhir/Patient/${rt.id}/$access-log`);
      t.equal(r.statusCode, 200);
      const events = (r.json<Bundle<AuditEvent>>().entry ?? []).map((e) => e.resource as AuditEvent);
      const countyRead = events.find((e) => e.subtype?.some((s) => s.code === 'read') && e.agent?.some((a) => a.who?.identifier?.value === 'county-his'));
      t.ok(countyRead, 'the county hospital reading her registration there');
      t.ok(countyRead?.agent?.some((a) => a.who?.identifier?.value === 'dr-li'), 'by which doctor');
      t.notOk(JSON.stringify(events).includes('"network"'), 'without network addresses');
    });

    t.test('and nothing else', async (t) => {
      t.equal((await get(`/fhir/Patient/${other.id}`)).statusCode, 403);
      t.equal((await get(`/fhir/Observation/${others.id}`)).statusCode, 403);
      t.equal((await get(`/fhir/Observation/${others.id}/_history/1`)).statusCode, 403);
      t.equal((await get(`/fhir/Patient/${other.id}/$everything`)).statusCode, 403);
      t.equal((await get(`/fhir/Patient/${other.id}/$access-log`)).statusCode, 403);
      t.equal((await get('/fhir/Observation?_summary=count')).statusCode, 403, 'no counting everyone');
      t.equal((await get('/fhir/Observation?_total=accurate')).statusCode, 403);
      t.equal((await get(`/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${ID_CARD_SYSTEM}|${ID}`)}`)).statusCode, 403);
      t.equal((await app.inject({ method: 'POST', url: '/fhir/Patient/$match', headers: { ...FHIR_HEADERS, ...bearer }, payload: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: { resourceType: 'Patient', name: [{ family: '郑' }] } }] } })).statusCode, 403);
      t.equal((await get('/fhir/AuditEvent')).statusCode, 403, 'not the audit trail at large');
      t.equal((await app.inject({ method: 'POST', url: '/fhir/Observation', headers: { ...FHIR_HEADERS, ...bearer }, payload: obs(rc.id as string, 1) })).statusCode, 403, 'no writes');
      t.equal((await app.inject({ url: `/fhir/Observation/${own1.id}`, headers: { ...bearer, 'x-break-glass': 'emergency', 'x-user-id': 'me' } })).statusCode, 403, 'no breaking the glass');
      const search = (await get(`/fhir/Observation?subject=Patient/${other.id}`)).json<Bundle>();
      t.same(ids(search), []);
      t.equal(search.total, undefined, 'no totals');
    });
  });
}
