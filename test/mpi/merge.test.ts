/**
 * Acceptance: merge then unmerge leaves every resource with the patient it had before, checked
 * resource by resource; ADT^A40 merges through the same MPI step; every merge is audited.
 */
import t from 'tap';
import type { Bundle, Observation, Parameters, Patient, Person, Resource } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createOverRest as create, createTestApp, FHIR_HEADERS, type TestApp } from '../helpers/app.js';
import { mrnSystem } from '../../src/fhir/systems.js';
import { findReferences } from '../../src/fhir/references.js';

const COUNTY = '1233042447101234XX';

/** Every stored resource but Patients, Persons and the MPI's review Tasks: `Type/id` → its Patient references by path. */
async function snapshot(ta: TestApp): Promise<Map<string, Record<string, string>>> {
  const { rows } = await ta.tdb.db.query<{ type: string; id: string; content: string }>(
    "SELECT type, id, content FROM resource WHERE NOT deleted AND type NOT IN ('Patient', 'Person', 'Task', 'Organization') ORDER BY type, id",
  );
  const out = new Map<string, Record<string, string>>();
  for (const r of rows) {
    const refs: Record<string, string> = {};
    for (const ref of findReferences(JSON.parse(r.content) as Resource)) if (ref.value.startsWith('Patient/')) refs[ref.path] = ref.value;
    out.set(`${r.type}/${r.id}`, refs);
  }
  return out;
}

function strip(p: Patient): Patient {
  const { meta: _meta, ...rest } = p;
  return rest as Patient;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const county = { authorization: `Bearer ${await ta.token('county-his')}` };
    const patient = (mrn: string, given: string, birthDate: string): Patient => ({
      resourceType: 'Patient',
      identifier: [{ system: mrnSystem(COUNTY), value: mrn }],
      name: [{ family: '孙', given: [given] }],
      gender: 'female',
      birthDate,
    });
    const a = await create(ta, patient('C-1', '丽', '1980-02-03'), county);
    const b = await create(ta, patient('C-2', '莉', '1980-02-03'), county); // the same woman registered twice
    const other = await create(ta, patient('C-3', '红', '1990-09-09'), county);
    const obs = (subject: string, value: number, performer?: string): Observation => ({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
      subject: { reference: subject },
      ...(performer ? { performer: [{ reference: performer }] } : {}),
      effectiveDateTime: '2026-11-01T08:00:00+08:00',
      valueQuantity: { value, unit: 'mmol/L' },
    });
    await create(ta, obs(`Patient/${a.id}`, 5.1), county);
    const onB = await create(ta, obs(`Patient/${b.id}`, 6.2), county);
    await create(ta, obs(`Patient/${a.id}`, 5.5, `Patient/${b.id}`), county); // refers to both
    await create(ta, obs(`Patient/${other.id}`, 4.9), county);
    await create(ta, { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: `Patient/${b.id}` } }, county);
    await create(ta, { resourceType: 'Condition', subject: { reference: `Patient/${b.id}` }, code: { text: '2型糖尿病' } }, county);
    await create(ta, { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'glucose' }, subject: { reference: `Patient/${b.id}` }, result: [{ reference: `Observation/${onB.id}` }] }, county);
    const before = await snapshot(ta);
    const patientsBefore = new Map((await Promise.all([a, b, other].map(async (p) => (await app.inject(`/fhir/Patient/${p.id}`)).json<Patient>()))).map((p) => [p.id, p]));

    const merge = (params: Parameters['parameter'], headers = county) =>
      app.inject({ method: 'POST', url: '/fhir/Patient/$merge', headers: { ...FHIR_HEADERS, ...headers }, payload: { resourceType: 'Parameters', parameter: params } });

    t.test('preview only counts', async (t) => {
      const r = await merge([{ name: 'source-patient', valueReference: { reference: `Patient/${b.id}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } }, { name: 'preview', valueBoolean: true }]);
      t.equal(r.statusCode, 200);
      // 5 clinical resources, and the review Task the MPI queued (same name, same birth date, same institution).
      t.match(JSON.stringify(r.json()), /Would move 6 resource/);
      t.same(await snapshot(ta), before, 'nothing changed');
    });

    t.test('$merge re-points every reference to the source, keeping history', async (t) => {
      const r = await merge([
        { name: 'source-patient-identifier', valueIdentifier: { system: mrnSystem(COUNTY), value: 'C-2' } },
        { name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } },
      ]);
      t.equal(r.statusCode, 200, r.body);
      const out = r.json<Parameters>();
      t.equal(out.parameter?.find((p) => p.name === 'result')?.resource?.id, a.id);
      const after = await snapshot(ta);
      for (const [key, refs] of before) {
        const expected = Object.fromEntries(Object.entries(refs).map(([path, v]) => [path, v === `Patient/${b.id}` ? `Patient/${a.id}` : v]));
        t.same(after.get(key), expected, `${key} now points to the survivor`);
      }
      const hist = await app.inject(`/fhir/Observation/${onB.id}/_history`);
      t.equal(hist.json<Bundle>().entry?.length, 2, 'the move is a new version; the old one is kept');
      const retired = (await app.inject(`/fhir/Patient/${b.id}`)).json<Patient>();
      t.equal(retired.active, false);
      t.same(retired.link, [{ other: { reference: `Patient/${a.id}` }, type: 'replaced-by' }]);
      const persons = await app.inject(`/fhir/Person?link=Patient/${b.id}`);
      const person = persons.json<Bundle<Person>>().entry?.[0]?.resource;
      t.ok(person?.link?.some((l) => l.target.reference === `Patient/${a.id}`), 'the duplicate joins the survivor\'s person: its MRN still finds the person');
      const again = await merge([{ name: 'source-patient', valueReference: { reference: `Patient/${b.id}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } }]);
      t.equal(again.statusCode, 422, 'a merged Patient cannot be merged again');
    });

    t.test('$unmerge gives every resource back, resource by resource', async (t) => {
      const r = await app.inject({ method: 'POST', url: '/fhir/Patient/$unmerge', headers: { ...FHIR_HEADERS, ...county }, payload: { resourceType: 'Parameters', parameter: [{ name: 'source-patient', valueReference: { reference: `Patient/${b.id}` } }] } });
      t.equal(r.statusCode, 200, r.body);
      const after = await snapshot(ta);
      t.same([...after.keys()], [...before.keys()], 'the same resources');
      for (const [key, refs] of before) t.same(after.get(key), refs, `${key} has the patient(s) it had before`);
      for (const p of [a, b, other]) {
        const now = (await app.inject(`/fhir/Patient/${p.id}`)).json<Patient>();
        t.same(strip(now), strip(patientsBefore.get(p.id) as Patient), `Patient/${p.id} is as it was`);
      }
      const again = await app.inject({ method: 'POST', url: '/fhir/Patient/$unmerge', headers: { ...FHIR_HEADERS, ...county }, payload: { resourceType: 'Parameters', parameter: [{ name: 'source-patient', valueReference: { reference: `Patient/${b.id}` } }] } });
      t.equal(again.statusCode, 404, 'nothing left to undo');
    });

    t.test('ADT^A40 merges through the same step', async (t) => {
      const src = await create(ta, patient('C-40', '芳', '1971-04-04'), county);
      await create(ta, patient('C-41', '芳', '1971-04-04'), county);
      const moved = await create(ta, obs(`Patient/${src.id}`, 7.7), county);
      const msg = [
        'MSH|^~\\&|QSHIS|QSXRMYY|COUNTY-HIE|QS|20261120081500||ADT^A40^ADT_A39|A40-1|P|2.5||||||UNICODE UTF-8',
        'EVN|A40|20261120081500',
        'PID|1||C-41^^^QSXRMYY^MR||孙^芳||19710404|F',
        'MRG|C-40^^^QSXRMYY^MR',
      ].join('\r');
      const ack = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { 'content-type': 'x-application/hl7-v2+er7', ...county }, payload: msg });
      t.match(ack.body, /MSA\|AA\|A40-1/);
      const o = (await app.inject(`/fhir/Observation/${moved.id}`)).json();
      const survivor = (await app.inject(`/fhir/Patient?identifier=${encodeURIComponent(`${mrnSystem(COUNTY)}|C-41`)}`)).json<Bundle<Patient>>().entry?.[0]?.resource;
      t.equal(o.subject.reference, `Patient/${survivor?.id}`, 'the result moved to the surviving record');
      const back = await app.inject({
        method: 'POST',
        url: '/fhir/Patient/$unmerge',
        headers: { ...FHIR_HEADERS, ...county },
        payload: { resourceType: 'Parameters', parameter: [{ name: 'source-patient-identifier', valueIdentifier: { system: mrnSystem(COUNTY), value: 'C-40' } }] },
      });
      t.equal(back.statusCode, 200, back.body);
      t.equal((await app.inject(`/fhir/Observation/${moved.id}`)).json().subject.reference, `Patient/${src.id}`);
    });

    t.test('refusals', async (t) => {
      const township = { authorization: `Bearer ${await ta.token('township1-his')}` };
      const r = await merge([{ name: 'source-patient', valueReference: { reference: `Patient/${b.id}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } }], township);
      t.equal(r.statusCode, 403, "a township may not merge the county's records");
      t.equal((await merge([{ name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } }])).statusCode, 400, 'no source');
      t.equal((await merge([{ name: 'source-patient', valueReference: { reference: `Patient/${a.id}` } }, { name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } }])).statusCode, 422);
      t.equal((await merge([{ name: 'source-patient', valueReference: { reference: 'Patient/nope' } }, { name: 'target-patient', valueReference: { reference: `Patient/${a.id}` } }])).statusCode, 404);
      t.equal((await merge([{ name: 'bogus', valueString: 'x' }])).statusCode, 400);
      const un = await app.inject({ method: 'POST', url: '/fhir/Patient/$unmerge', headers: { ...FHIR_HEADERS, ...township }, payload: { resourceType: 'Parameters', parameter: [{ name: 'source-patient', valueReference: { reference: `Patient/${b.id}` } }] } });
      t.equal(un.statusCode, 403);
    });

    t.test('a review ends in $link; a wrong link is undone with $unlink', async (t) => {
      const review = (await app.inject(`/fhir/Task?code=review-link&focus=Patient/${b.id}`)).json<Bundle>();
      t.equal(review.entry?.length, 1, 'the second registration at the same institution waits for review');
      const personOf = async (id: string) => (await app.inject(`/fhir/Person?link=Patient/${id}`)).json<Bundle<Person>>().entry?.[0]?.resource as Person;
      const pa = await personOf(a.id as string);
      const pb = await personOf(b.id as string);
      t.not(pa.id, pb.id, 'two persons until someone decides');
      const relink = (mode: string, person: string, patient: string) =>
        app.inject({ method: 'POST', url: `/fhir/Person/${person}/$${mode}`, headers: { ...FHIR_HEADERS, ...county }, payload: { resourceType: 'Parameters', parameter: [{ name: 'patient', valueReference: { reference: `Patient/${patient}` } }] } });
      const linked = await relink('link', pa.id as string, b.id as string);
      t.equal(linked.statusCode, 200, linked.body);
      t.same((await personOf(b.id as string)).id, pa.id);
      t.equal((await app.inject(`/fhir/Person/${pb.id}`)).statusCode, 410, 'the emptied person is gone');
      const un = await relink('unlink', pa.id as string, b.id as string);
      t.equal(un.statusCode, 200, un.body);
      const split = await personOf(b.id as string);
      t.not(split.id, pa.id);
      t.same(split.link?.map((l) => l.target.reference), [`Patient/${b.id}`]);
      t.same((await personOf(a.id as string)).link?.map((l) => l.target.reference), [`Patient/${a.id}`], 'each record is its own person again');
      t.equal((await relink('unlink', split.id as string, b.id as string)).statusCode, 422, 'the only record of a person cannot be unlinked');
      t.equal((await relink('unlink', pa.id as string, b.id as string)).statusCode, 422, 'not linked there');
    });

    t.test('auditors see every merge, unmerge, link and unlink', async (t) => {
      const auditor = { authorization: `Bearer ${await ta.token('auditor')}` };
      for (const subtype of ['$merge', '$unmerge', 'mpi-unlink', 'mpi-link']) {
        const r = await app.inject({ url: `/fhir/AuditEvent?subtype=${encodeURIComponent(subtype)}&patient=Patient/${b.id}`, headers: auditor });
        t.equal(r.json<Bundle>().entry?.length, 1, subtype);
      }
    });
  });
}
