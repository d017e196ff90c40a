/**
 * The golden record and identity operations over HTTP: one resident registered at three
 * institutions under three MRNs and three spellings becomes one Person; any local identifier
 * finds the person; $ihe-pix cross-references; $match scores; conflicts and doubts are flagged
 * and queued; every decision is in the audit trail.
 */
import t from 'tap';
import type { Bundle, Parameters, Patient, Person, Task } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { ID_CARD_SYSTEM, mrnSystem } from '../../src/fhir/systems.js';
import { MPI_FLAG_SYSTEM } from '../../src/mpi/index.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP = '1233042447102341XF';
const VILLAGE = '52330424681045633Y';
const ID = '330424196207150011'; // 1962-07-15, male
const OLD_ID = '330424620715001'; // the same, 15 digits

const county: Patient = {
  resourceType: 'Patient',
  identifier: [{ system: mrnSystem(COUNTY), value: 'C-1001' }, { system: ID_CARD_SYSTEM, value: ID }],
  name: [{ family: '张', given: ['建国'] }],
  gender: 'male',
  birthDate: '1962-07-15',
  address: [{ text: '浙江省青山县城关镇东河村12号' }],
};
const township: Patient = {
  resourceType: 'Patient',
  identifier: [{ system: mrnSystem(TOWNSHIP), value: 'T-2002' }],
  name: [{ text: 'ZHANG JIANGUO' }],
  gender: 'male',
  birthDate: '1962-07-15',
  telecom: [{ system: 'phone', value: '13957300001' }],
  address: [{ text: '东河村12号' }],
};
const village: Patient = {
  resourceType: 'Patient',
  identifier: [{ system: mrnSystem(VILLAGE), value: 'V-3003' }, { system: ID_CARD_SYSTEM, value: OLD_ID }],
  name: [{ family: '章', given: ['建国'] }],
  gender: 'male',
  birthDate: '1962-07-15',
};

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const post = async (p: Patient) => {
      const r = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: p });
      t.equal(r.statusCode, 201, 'registered');
      return r.json<Patient>();
    };
    const pc = await post(county);
    const pt = await post(township);
    const pv = await post(village);

    t.test('three registrations become one Person with three links', async (t) => {
      const r = await app.inject(`/fhir/Person?identifier=${encodeURIComponent(`${mrnSystem(VILLAGE)}|V-3003`)}`);
      const persons = r.json<Bundle<Person>>().entry ?? [];
      t.equal(persons.length, 1, 'a local MRN finds the person');
      const person = persons[0].resource as Person;
      t.same(person.link?.map((l) => l.target.reference).sort(), [pc.id, pt.id, pv.id].map((id) => `Patient/${id}`).sort());
      t.equal(person.link?.find((l) => l.target.reference === `Patient/${pv.id}`)?.assurance, 'level4', 'the 15-digit ID card links deterministically');
      t.equal(person.link?.find((l) => l.target.reference === `Patient/${pt.id}`)?.assurance, 'level3', 'pinyin name, birth date, address: probabilistic');
      t.ok(person.identifier?.some((i) => i.system === ID_CARD_SYSTEM && i.value === ID), 'the golden record carries the 18-digit ID card number');
      t.equal(person.birthDate, '1962-07-15');
      // The local records are not changed by linking.
      const stored = await app.inject(`/fhir/Patient/${pt.id}`);
      t.equal(stored.json<Patient>().meta?.versionId, '1');
      const byId = await app.inject(`/fhir/Person?identifier=${encodeURIComponent(`${ID_CARD_SYSTEM}|${ID}`)}`);
      t.equal(byId.json<Bundle>().entry?.length, 1);
    });

    t.test('$ihe-pix cross-references every local identifier', async (t) => {
      const r = await app.inject(`/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${mrnSystem(TOWNSHIP)}|T-2002`)}`);
      t.equal(r.statusCode, 200);
      const params = r.json<Parameters>().parameter ?? [];
      const ids = params.filter((p) => p.name === 'targetIdentifier').map((p) => `${p.valueIdentifier?.system}|${p.valueIdentifier?.value}`);
      t.same(ids.sort(), [`${mrnSystem(COUNTY)}|C-1001`, `${ID_CARD_SYSTEM}|${ID}`, `${mrnSystem(VILLAGE)}|V-3003`].sort());
      t.same(params.filter((p) => p.name === 'targetId').map((p) => p.valueReference?.reference).sort(), [pc.id, pt.id, pv.id].map((id) => `Patient/${id}`).sort());

      const only = await app.inject(`/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${ID_CARD_SYSTEM}|${OLD_ID}`)}&targetSystem=${encodeURIComponent(mrnSystem(COUNTY))}`);
      t.equal(only.statusCode, 200);
      t.same(only.json<Parameters>().parameter, [
        { name: 'targetIdentifier', valueIdentifier: { system: mrnSystem(COUNTY), value: 'C-1001' } },
        { name: 'targetId', valueReference: { reference: `Patient/${pc.id}` } },
      ], 'the old 15-digit number is found too; targetSystem narrows');

      const post = await app.inject({ method: 'POST', url: '/fhir/Patient/$ihe-pix', headers: FHIR_HEADERS, payload: { resourceType: 'Parameters', parameter: [{ name: 'sourceIdentifier', valueIdentifier: { system: ID_CARD_SYSTEM, value: ID } }] } });
      t.equal(post.statusCode, 200);
    });

    t.test('$ihe-pix refuses what it cannot answer', async (t) => {
      const unknown = await app.inject(`/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${mrnSystem(COUNTY)}|NOPE`)}`);
      t.equal(unknown.statusCode, 404);
      t.match(unknown.json(), { resourceType: 'OperationOutcome', issue: [{ code: 'not-found' }] });
      t.equal((await app.inject(`/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent('urn:other|1')}`)).statusCode, 400, 'unknown domain');
      t.equal((await app.inject(`/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${ID_CARD_SYSTEM}|${ID}`)}&targetSystem=urn:other`)).statusCode, 403, 'unknown target domain');
      t.equal((await app.inject('/fhir/Patient/$ihe-pix')).statusCode, 400, 'no sourceIdentifier');
      t.equal((await app.inject('/fhir/Patient/$ihe-pix?sourceIdentifier=nobar')).statusCode, 400);
      const auditor = await ta.token('auditor');
      t.equal((await app.inject({ url: `/fhir/Patient/$ihe-pix?sourceIdentifier=${encodeURIComponent(`${ID_CARD_SYSTEM}|${ID}`)}`, headers: { authorization: `Bearer ${auditor}` } })).statusCode, 403, 'needs Patient read');
    });

    t.test('$match scores candidates with match-grade', async (t) => {
      const body = (resource: Patient, extra: Parameters['parameter'] = []) => ({ resourceType: 'Parameters', parameter: [{ name: 'resource', resource }, ...(extra ?? [])] });
      const r = await app.inject({
        method: 'POST',
        url: '/fhir/Patient/$match',
        headers: FHIR_HEADERS,
        payload: body({ resourceType: 'Patient', name: [{ family: 'Zhang', given: ['Jianguo'] }], birthDate: '1962-15-07'.replace('15-07', '07-15'), gender: 'male' }),
      });
      t.equal(r.statusCode, 200);
      const b = r.json<Bundle>();
      t.equal(b.type, 'searchset');
      t.equal(b.entry?.length, 3);
      for (const e of b.entry ?? []) {
        t.equal(e.search?.mode, 'match');
        t.ok((e.search?.score ?? 0) > 0.5);
        t.equal(e.search?.extension?.[0].url, 'http://hl7.org/fhir/StructureDefinition/match-grade');
      }
      t.equal(b.entry?.[0].search?.extension?.[0].valueCode, 'probable');
      const certain = await app.inject({
        method: 'POST',
        url: '/fhir/Patient/$match',
        headers: FHIR_HEADERS,
        payload: body({ resourceType: 'Patient', identifier: [{ system: ID_CARD_SYSTEM, value: ID }] }, [{ name: 'onlyCertainMatches', valueBoolean: true }]),
      });
      t.same(certain.json<Bundle>().entry?.map((e) => e.resource?.id).sort(), [pc.id, pv.id].sort(), 'the records with the ID card are certain');
      const none = await app.inject({ method: 'POST', url: '/fhir/Patient/$match', headers: FHIR_HEADERS, payload: body({ resourceType: 'Patient', name: [{ family: '李', given: ['四'] }], birthDate: '1990-01-01' }) });
      t.equal(none.json<Bundle>().entry?.length, 0);
      t.equal((await app.inject({ method: 'POST', url: '/fhir/Patient/$match', headers: FHIR_HEADERS, payload: { resourceType: 'Parameters', parameter: [] } })).statusCode, 400);
      t.equal((await app.inject({ method: 'POST', url: '/fhir/Patient/$match', headers: FHIR_HEADERS, payload: body({ resourceType: 'Patient' }, [{ name: 'count', valueInteger: 0 }]) })).statusCode, 400);
    });

    t.test('an ID card number that conflicts with the record is flagged and queued, not trusted', async (t) => {
      const wrong = await post({
        resourceType: 'Patient',
        identifier: [{ system: mrnSystem(TOWNSHIP), value: 'T-9' }, { system: ID_CARD_SYSTEM, value: ID }],
        name: [{ family: '张', given: ['建国'] }],
        gender: 'female',
        birthDate: '1962-07-15',
      });
      t.same(wrong.meta?.tag?.filter((x) => x.system === MPI_FLAG_SYSTEM).map((x) => x.code), ['id-card-sex']);
      const tasks = await app.inject(`/fhir/Task?focus=Patient/${wrong.id}`);
      const task = tasks.json<Bundle<Task>>().entry?.[0]?.resource;
      t.equal(task?.code?.coding?.[0].code, 'review-link', 'a person is asked to check');
      t.match(task?.description, /conflicts/);
    });

    t.test('a doubtful match starts its own person and waits in the review queue', async (t) => {
      // Same name and address, no birth date: below the auto-link weight, above the review weight.
      const doubtful = await post({ resourceType: 'Patient', identifier: [{ system: mrnSystem(VILLAGE), value: 'V-77' }], name: [{ family: '张', given: ['建国'] }], gender: 'male', address: [{ text: '东河村12号' }] });
      const person = await app.inject(`/fhir/Person?link=Patient/${doubtful.id}`);
      t.equal(person.json<Bundle<Person>>().entry?.[0].resource?.link?.length, 1, 'not linked');
      const queue = await app.inject(`/fhir/Task?code=review-link&focus=Patient/${doubtful.id}&status=requested`);
      const task = queue.json<Bundle<Task>>().entry?.[0]?.resource;
      t.ok(task, 'queued');
      t.ok(task?.input?.some((i) => i.valueCode === 'possible'));
    });

    t.test('auditors see every link decision', async (t) => {
      const auditor = { authorization: `Bearer ${await ta.token('auditor')}` };
      const links = await app.inject({ url: `/fhir/AuditEvent?subtype=mpi-link&patient=Patient/${pt.id}`, headers: auditor });
      t.equal(links.json<Bundle>().entry?.length, 1);
      const pix = await app.inject({ url: '/fhir/AuditEvent?subtype=$ihe-pix', headers: auditor });
      t.ok((pix.json<Bundle>().entry?.length ?? 0) >= 2);
    });
  });
}
