/**
 * Acceptance: a consent restriction hides the restricted resources from every read path (read,
 * vread, search, _include, _revinclude, $everything, history) and break-glass shows them with an
 * audit entry that auditors can list.
 */
import t from 'tap';
import type { Bundle, Consent, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createOverRest as post, createTestApp, entryRefs as ids, FHIR_HEADERS } from '../helpers/app.js';
import { ID_CARD_SYSTEM, USCC_SYSTEM, mrnSystem } from '../../src/fhir/systems.js';
import { sensitivityOf } from '../../src/ehr/index.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP = '1233042447102341XF';
const VILLAGE = '52330424681045633Y';
const ID = '330424198804150027'; // 1988-04-15, female

t.test('sensitive categories from labels and codes', async (t) => {
  t.same([...sensitivityOf({ resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'F32.900' }] } })], ['PSY']);
  t.same([...sensitivityOf({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '7917-8' }] } })], ['HIV']);
  t.same([...sensitivityOf({ resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { coding: [{ code: 'O80' }] } })], ['SEX']);
  t.same([...sensitivityOf({ resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { coding: [{ code: 'A53.9' }] } })], ['STD']);
  t.same([...sensitivityOf({ resourceType: 'Observation', status: 'final', meta: { security: [{ code: 'PSY' }] }, code: { text: 'x' } })], ['PSY']);
  t.same([...sensitivityOf({ resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { coding: [{ code: 'I10.x00' }] } })], []);
});


for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const county = { authorization: `Bearer ${await ta.token('county-his')}` };
    const township = { authorization: `Bearer ${await ta.token('township1-his')}` };
    const auditor = { authorization: `Bearer ${await ta.token('auditor')}` };
    const villageOrg = await post(ta, { resourceType: 'Organization', identifier: [{ system: USCC_SYSTEM, value: VILLAGE }], name: '东河村卫生室' }, {});

    const person = (mrnSys: string, mrn: string): Patient => ({
      resourceType: 'Patient',
      identifier: [{ system: mrnSys, value: mrn }, { system: ID_CARD_SYSTEM, value: ID }],
      name: [{ family: '周', given: ['敏'] }],
      gender: 'female',
      birthDate: '1988-04-15',
    });
    const pc = await post(ta, person(mrnSystem(COUNTY), 'C-9'), county);
    const pt = await post(ta, person(mrnSystem(TOWNSHIP), 'T-9'), township);
    const depression = await post(ta, { resourceType: 'Condition', subject: { reference: `Patient/${pt.id}` }, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'F32.900', display: '抑郁发作' }] } }, township);
    const hiv = await post(ta, { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${pt.id}` }, code: { coding: [{ system: 'http://loinc.org', code: '7917-8' }] }, valueCodeableConcept: { text: 'negative' } }, township);
    const glucose = await post(ta, { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${pt.id}` }, code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] }, valueQuantity: { value: 5.2, unit: 'mmol/L' } }, township);
    const report = await post(ta, { resourceType: 'DiagnosticReport', status: 'final', subject: { reference: `Patient/${pt.id}` }, code: { text: '化验' }, result: [{ reference: `Observation/${hiv.id}` }, { reference: `Observation/${glucose.id}` }] }, township);
    const hidden = [`Condition/${depression.id}`, `Observation/${hiv.id}`];

    // The resident asks, at the county hospital, that mental health and HIV be kept from every institution.
    const consent = await post<Consent>(ta, {
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: `Patient/${pc.id}` },
      policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
      provision: { type: 'deny', securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }, { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HIV' }] },
    }, county);

    const get = (url: string, headers: Record<string, string> = county) => app.inject({ url, headers });

    t.test('every read path hides what the consent withholds', async (t) => {
      for (const ref of hidden) {
        const r = await get(`/fhir/${ref}`);
        t.equal(r.statusCode, 403, `read ${ref}`);
        t.match(r.json(), { issue: [{ code: 'suppressed' }] });
        t.equal((await get(`/fhir/${ref}/_history/1`)).statusCode, 403, `vread ${ref}`);
        t.same(ids((await get(`/fhir/${ref}/_history`)).json()), [], `instance history ${ref}`);
      }
      t.same(ids((await get(`/fhir/Condition?subject=Patient/${pt.id}`)).json()), [], 'search');
      t.same(ids((await get(`/fhir/Observation?subject=Patient/${pt.id}`)).json()), [`Observation/${glucose.id}`], 'search keeps the rest');
      const inc = ids((await get(`/fhir/DiagnosticReport?_id=${report.id}&_include=DiagnosticReport:result`)).json());
      t.same(inc.sort(), [`DiagnosticReport/${report.id}`, `Observation/${glucose.id}`].sort(), '_include');
      const rev = ids((await get(`/fhir/Patient?_id=${pt.id}&_revinclude=Condition:subject&_revinclude=Observation:subject`)).json());
      t.same(rev.sort(), [`Patient/${pt.id}`, `Observation/${glucose.id}`].sort(), '_revinclude');
      const all = ids((await get(`/fhir/Patient/${pc.id}/$everything`)).json());
      t.ok(all.includes(`Observation/${glucose.id}`), '$everything keeps the rest');
      for (const ref of hidden) t.notOk(all.includes(ref), `$everything hides ${ref}`);
      for (const url of ['/fhir/Observation/_history', '/fhir/Condition/_history', '/fhir/_history?_count=500']) {
        const h = ids((await get(url)).json());
        for (const ref of hidden) t.notOk(h.includes(ref), `${url} hides ${ref}`);
      }
      t.ok(ids((await get('/fhir/Observation/_history')).json()).includes(`Observation/${glucose.id}`));
      const system = ids((await get(`/fhir?_type=Condition,Observation&_count=100`)).json());
      for (const ref of hidden) t.notOk(system.includes(ref), `system search hides ${ref}`);
    });

    t.test('the institution that wrote them still sees them', async (t) => {
      t.equal((await get(`/fhir/Condition/${depression.id}`, township)).statusCode, 200);
      t.same(ids((await get(`/fhir/Observation?subject=Patient/${pt.id}`, township)).json()).sort(), [`Observation/${hiv.id}`, `Observation/${glucose.id}`].sort());
    });

    t.test('break the glass: shown, flagged and audited', async (t) => {
      const reason = encodeURIComponent('急诊昏迷，需了解既往史');
      const noUser = await get(`/fhir/Condition/${depression.id}`, { ...county, 'x-break-glass': reason });
      t.equal(noUser.statusCode, 403, 'the clinician must be named');
      const bg = { ...county, 'x-break-glass': reason, 'x-user-id': 'dr-wang' };
      t.equal((await get(`/fhir/Condition/${depression.id}`, bg)).statusCode, 200);
      const all = ids((await get(`/fhir/Patient/${pc.id}/$everything`, bg)).json());
      for (const ref of hidden) t.ok(all.includes(ref), `$everything shows ${ref}`);
      t.equal((await get(`/fhir/Condition/${depression.id}`, { ...township, 'x-break-glass': 'x' })).statusCode, 400, 'a reason is needed');
      const platform = { authorization: `Bearer ${await ta.token('regional-platform')}`, 'x-break-glass': reason, 'x-user-id': 'u' };
      t.equal((await get(`/fhir/Condition/${depression.id}`, platform)).statusCode, 403, 'only clinical clients break the glass');

      const events = (await get('/fhir/AuditEvent?subtype=break-glass', auditor)).json<Bundle>();
      t.equal(events.entry?.length, 2, 'one per break-glass access');
      const ev = events.entry?.[0]?.resource as unknown as { purposeOfEvent: { coding: { code: string }[] }[]; outcomeDesc: string; agent: { who: { identifier?: { value: string } } }[]; entity: { what?: { reference: string } }[] };
      t.equal(ev.purposeOfEvent[0].coding[0].code, 'BTG');
      t.match(ev.outcomeDesc, /急诊昏迷/);
      t.ok(ev.agent.some((a) => a.who.identifier?.value === 'dr-wang'));
      t.ok(ev.entity.some((e) => e.what?.reference === `Patient/${pt.id}`));
      const refused = (await get(`/fhir/AuditEvent?subtype=read&outcome=4&agent=county-his`, auditor)).json<Bundle>();
      t.ok((refused.entry?.length ?? 0) >= 1, 'withheld reads are audited as refused');
    });

    t.test('a consent may name institutions, or withhold the whole record', async (t) => {
      await app.inject({
        method: 'PUT',
        url: `/fhir/Consent/${consent.id}`,
        headers: { ...FHIR_HEADERS, ...county },
        payload: { ...consent, provision: { type: 'deny', actor: [{ role: { text: 'recipient' }, reference: { reference: `Organization/${villageOrg.id}` } }] } },
      });
      t.equal((await get(`/fhir/Condition/${depression.id}`)).statusCode, 200, 'the county is not named');
      const village = { authorization: `Bearer ${await ta.token('village1-his')}` };
      t.equal((await get(`/fhir/Condition/${depression.id}`, village)).statusCode, 403, 'the village is');
      t.equal((await get(`/fhir/Observation/${glucose.id}`, village)).statusCode, 403, 'no category: the whole record');
      t.equal((await get(`/fhir/Patient/${pt.id}`, village)).statusCode, 200, 'but never the Patient itself');
      await app.inject({ method: 'PUT', url: `/fhir/Consent/${consent.id}`, headers: { ...FHIR_HEADERS, ...county }, payload: { ...consent, status: 'inactive' } });
      t.equal((await get(`/fhir/Observation/${glucose.id}`, village)).statusCode, 200, 'an inactive consent withholds nothing');
    });
  });
}
