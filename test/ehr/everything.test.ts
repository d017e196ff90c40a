/**
 * Acceptance: an ORU for a patient known only by a township MRN appears in the $everything of the
 * person fetched by ID card number at the county hospital; $everything filters and pages.
 */
import t from 'tap';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { ID_CARD_SYSTEM, USCC_SYSTEM, mrnSystem } from '../../src/fhir/systems.js';
import { SOURCE_INSTITUTION_EXTENSION } from '../../src/ehr/index.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP = '1233042447102341XF';
const ID = '330424197511030035'; // 1975-11-03, male

function townshipOru(controlId: string, mrn: string): string {
  return [
    `MSH|^~\\&|CGLIS|CGZWSY|COUNTY-HIE|QS|20261120081500||ORU^R01^ORU_R01|${controlId}|P|2.5||||||UNICODE UTF-8`,
    `PID|1||${mrn}^^^CGZWSY^MR||钱^立新||19751103|M`,
    `OBR|1|O-${controlId}|F-${controlId}|2345-7^Glucose^LN|||20261120080000`,
    `OBX|1|NM|2345-7^Glucose^LN||6.2|mmol/L|3.9-6.1|H|||F|||20261120080000`,
  ].join('\r');
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const county = { authorization: `Bearer ${await ta.token('county-his')}` };
    const township = { authorization: `Bearer ${await ta.token('township1-his')}` };

    await app.inject({
      method: 'POST',
      url: '/fhir/Organization',
      headers: FHIR_HEADERS,
      payload: { resourceType: 'Organization', identifier: [{ system: USCC_SYSTEM, value: TOWNSHIP }], name: '青山县城关镇卫生院' },
    });
    const reg = await app.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { ...FHIR_HEADERS, ...county },
      payload: {
        resourceType: 'Patient',
        identifier: [{ system: mrnSystem(COUNTY), value: 'C-77' }, { system: ID_CARD_SYSTEM, value: ID }],
        name: [{ family: '钱', given: ['立新'] }],
        gender: 'male',
        birthDate: '1975-11-03',
      } satisfies Patient,
    });
    t.equal(reg.statusCode, 201);
    const countyVisit = await app.inject({
      method: 'POST',
      url: '/fhir/Encounter',
      headers: { ...FHIR_HEADERS, ...county },
      payload: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${reg.json<Patient>().id}` }, period: { start: '2026-01-05T09:00:00+08:00', end: '2026-01-05T10:00:00+08:00' } },
    });
    t.equal(countyVisit.statusCode, 201);

    const ack = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { 'content-type': 'x-application/hl7-v2+er7', ...township }, payload: townshipOru('CG-1', 'T-5501') });
    t.equal(ack.statusCode, 200);
    t.match(ack.body, /MSA\|AA\|CG-1/, 'the township ORU is stored');

    const everything = async (id: string, query = '', headers = county) => {
      const r = await app.inject({ url: `/fhir/Patient/${id}/$everything${query}`, headers });
      return r;
    };

    t.test('the township result is in the record of the person found by ID card at the county', async (t) => {
      const found = await app.inject({ url: `/fhir/Patient?identifier=${encodeURIComponent(`${ID_CARD_SYSTEM}|${ID}`)}`, headers: county });
      const patients = found.json<Bundle<Patient>>().entry ?? [];
      t.equal(patients.length, 1, 'only the county registration carries the ID card');
      const r = await everything(patients[0].resource?.id as string);
      t.equal(r.statusCode, 200);
      const b = r.json<Bundle>();
      t.equal(b.type, 'searchset');
      const obs = (b.entry ?? []).filter((e) => e.resource?.resourceType === 'Observation');
      t.equal(obs.length, 1);
      const o = obs[0].resource as Observation;
      t.equal(o.valueQuantity?.value, 6.2);
      const townshipPatient = (b.entry ?? []).find((e) => e.resource?.resourceType === 'Patient' && e.resource.id !== patients[0].resource?.id)?.resource as Patient;
      t.ok(townshipPatient?.identifier?.some((i) => i.system === mrnSystem(TOWNSHIP) && i.value === 'T-5501'), 'the township registration, known by its MRN only');
      t.equal(o.subject?.reference, `Patient/${townshipPatient.id}`);
      const mark = obs[0].extension?.find((x) => x.url === SOURCE_INSTITUTION_EXTENSION);
      t.equal(mark?.valueReference?.identifier?.value, TOWNSHIP, 'marked with the institution it came from');
      t.equal(mark?.valueReference?.display, '青山县城关镇卫生院');
      t.ok((b.entry ?? []).some((e) => e.resource?.resourceType === 'Encounter'), "and the county's own encounter");
      t.ok((b.entry ?? []).some((e) => e.resource?.resourceType === 'Person'), 'and the golden record');
      // The same from the township side.
      const fromTownship = await everything(townshipPatient.id as string, '', township);
      t.equal((fromTownship.json<Bundle>().entry ?? []).filter((e) => e.resource?.resourceType === 'Encounter').length, 1);
    });

    t.test('_type, _since, start and end filter; _count pages with a stable cursor', async (t) => {
      const id = reg.json<Patient>().id as string;
      const types = (b: Bundle) => (b.entry ?? []).map((e: BundleEntry) => e.resource?.resourceType).filter((x) => x !== 'Patient' && x !== 'Person');
      t.same(types((await everything(id, '?_type=Observation')).json()), ['Observation']);
      t.same(types((await everything(id, '?_type=Encounter,Observation')).json()).sort(), ['Encounter', 'Observation']);
      t.same(types((await everything(id, `?_since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).json()), []);
      // The ORU brought the order (no care date: always kept), the report and the result.
      t.same(types((await everything(id, '?start=2026-11-01')).json()).sort(), ['DiagnosticReport', 'Observation', 'ServiceRequest'], 'the January encounter is before start');
      t.same(types((await everything(id, '?end=2026-06')).json()).sort(), ['Encounter', 'ServiceRequest'], 'the November results are after end');
      const seen: string[] = [];
      let url: string | undefined = `/fhir/Patient/${id}/$everything?_count=1`;
      let pages = 0;
      while (url && pages < 10) {
        const page: Bundle = (await app.inject({ url, headers: county })).json();
        pages++;
        seen.push(...(types(page) as string[]));
        url = page.link?.find((l) => l.relation === 'next')?.url?.replace('http://gateway.test', '');
      }
      t.same(seen.sort(), ['DiagnosticReport', 'Encounter', 'Observation', 'ServiceRequest'], 'every resource once across pages');
      t.equal(pages, 5, 'one per page, and a last page saying there is no more');
    });

    t.test('$summary: a document of problems, allergies, medications, last results, encounters, imaging', async (t) => {
      const id = reg.json<Patient>().id as string;
      const subject = { reference: `Patient/${id}` };
      const add = async (resource: Record<string, unknown>) => {
        const r = await app.inject({ method: 'POST', url: `/fhir/${String(resource.resourceType)}`, headers: { ...FHIR_HEADERS, ...county }, payload: { ...resource, subject, ...(resource.resourceType === 'AllergyIntolerance' ? { subject: undefined, patient: subject } : {}) } });
        t.equal(r.statusCode, 201, String(resource.resourceType));
        return r.json<{ id: string }>().id;
      };
      const active = await add({ resourceType: 'Condition', clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'I10.x00', display: '高血压' }] } });
      const resolved = await add({ resourceType: 'Condition', clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] }, code: { text: '急性支气管炎' } });
      const allergy = await add({ resourceType: 'AllergyIntolerance', clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] }, code: { text: '青霉素' } });
      const med = await add({ resourceType: 'MedicationRequest', status: 'active', intent: 'order', medicationCodeableConcept: { text: '氨氯地平 5mg' } });
      const stopped = await add({ resourceType: 'MedicationRequest', status: 'stopped', intent: 'order', medicationCodeableConcept: { text: '卡托普利' } });
      const older = await add({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] }, effectiveDateTime: '2026-01-01T08:00:00+08:00', valueQuantity: { value: 7.9, unit: 'mmol/L' } });
      const imaging = await add({ resourceType: 'ImagingStudy', status: 'available', started: '2026-11-02T10:00:00+08:00' });
      const r = await everything(id, '').then(() => app.inject({ url: `/fhir/Patient/${id}/$summary`, headers: county }));
      t.equal(r.statusCode, 200);
      const doc = r.json<Bundle>();
      t.equal(doc.type, 'document');
      t.ok(doc.identifier?.value && doc.timestamp);
      const composition = doc.entry?.[0]?.resource as { resourceType: string; section: { code: { coding: { code: string }[] }; entry?: { reference: string }[] }[] };
      t.equal(composition.resourceType, 'Composition');
      const section = (code: string) => (composition.section.find((x) => x.code.coding[0].code === code)?.entry ?? []).map((e) => e.reference.replace('http://gateway.test/fhir/', ''));
      t.same(section('11450-4'), [`Condition/${active}`], 'active problems only');
      t.notOk(section('11450-4').includes(`Condition/${resolved}`));
      t.same(section('48765-2'), [`AllergyIntolerance/${allergy}`]);
      t.same(section('10160-0'), [`MedicationRequest/${med}`], 'current medications only');
      t.notOk(section('10160-0').includes(`MedicationRequest/${stopped}`));
      const results = section('30954-2');
      t.equal(results.length, 1, 'one glucose: the last one');
      t.not(results[0], `Observation/${older}`, 'the township result of November, not the January one');
      t.same(section('46240-8').length, 1);
      t.same(section('18748-4'), [`ImagingStudy/${imaging}`]);
      const cited = new Set((doc.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`));
      for (const code of ['11450-4', '30954-2']) for (const ref of section(code)) t.ok(cited.has(ref), `${ref} is in the document`);
      const townshipResult = doc.entry?.find((e) => `${e.resource?.resourceType}/${e.resource?.id}` === results[0]);
      t.equal(townshipResult?.extension?.[0]?.valueReference?.identifier?.value, TOWNSHIP, 'marked with its institution');
      t.equal((await app.inject({ url: `/fhir/Patient/${id}/$summary?x=1`, headers: county })).statusCode, 400);
      // A person with nothing recorded: empty sections still make a valid document (cmp-1), one a referral can store.
      const bare = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...county, 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Patient', name: [{ family: '空', given: ['白'] }], birthDate: '1990-01-01' } })).json<{ id: string }>();
      const empty = (await app.inject({ url: `/fhir/Patient/${bare.id}/$summary`, headers: county })).json<Bundle>();
      const check = await app.inject({ method: 'POST', url: '/fhir/Bundle/$validate', headers: { ...county, 'content-type': 'application/fhir+json' }, payload: empty });
      const errors = (check.json<{ issue?: { severity: string; diagnostics?: string }[] }>().issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
      t.same(errors, [], 'the summary document validates');
    });

    t.test('bad requests', async (t) => {
      const id = reg.json<Patient>().id as string;
      t.equal((await everything('no-such-patient')).statusCode, 404);
      t.equal((await everything(id, '?_type=Nope')).statusCode, 400);
      t.equal((await everything(id, '?start=yesterday')).statusCode, 400);
      t.equal((await everything(id, '?bogus=1')).statusCode, 400);
      t.equal((await everything(id, '?_count=0')).statusCode, 400);
      const auditor = { authorization: `Bearer ${await ta.token('auditor')}` };
      t.equal((await everything(id, '', auditor)).statusCode, 403);
      const events = await app.inject({ url: `/fhir/AuditEvent?subtype=$everything&patient=Patient/${id}`, headers: auditor });
      t.ok((events.json<Bundle>().entry?.length ?? 0) >= 1, 'audited');
    });
  });
}
