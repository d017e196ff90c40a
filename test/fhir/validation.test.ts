import t from 'tap';
import type { Organization, OperationOutcomeIssue, Patient, Resource } from '@medplum/fhirtypes';
import { GatewayError } from '../../src/errors.js';
import {
  CN_ORGANIZATION_PROFILE,
  CN_PATIENT_PROFILE,
  HOSPITAL_GRADE_EXTENSION,
  HOSPITAL_GRADE_SYSTEM,
  ID_CARD_SYSTEM,
  INSTITUTION_LEVEL_EXTENSION,
  INSTITUTION_LEVEL_SYSTEM,
  mrnSystem,
} from '../../src/fhir/systems.js';
import { calendarProblem, createValidator, type ReferenceResolver, type Validator } from '../../src/fhir/validation.js';
import { checkIdCard, idCardCheckChar } from '../../src/mpi/index.js';

const PROFILES = new URL('../../profiles/', import.meta.url).pathname;
let v: Validator;
t.before(async () => {
  v = await createValidator(PROFILES);
});

const patient = (identifier: Patient['identifier'], extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  meta: { profile: [CN_PATIENT_PROFILE] },
  identifier,
  name: [{ text: '张三' }],
  ...extra,
});
const idCard = (value: string) => ({ system: ID_CARD_SYSTEM, value });
const mrn = { system: mrnSystem('12330424MB0000001X'), value: 'MRN-1' };
const errors = (issues: OperationOutcomeIssue[]) => issues.filter((i) => i.severity === 'error');
const paths = (issues: OperationOutcomeIssue[]) => errors(issues).map((i) => i.expression?.[0]);

async function thrown(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a GatewayError');
}

t.test('a conforming Patient has no issues', async (t) => {
  t.same(await v.validate(patient([mrn, idCard('11010519491231002X')])), []);
  t.same(await v.validate(patient([idCard('11010519491231002x')])), [], 'lower-case x accepted');
  await v.assertValid(patient([mrn]));
});

t.test('base R4 structure errors are 400 with precise paths', async (t) => {
  const wrongTypes = { resourceType: 'Patient', active: 'yes', birthDate: 19490101, name: [{ text: 'a' }, { given: 'B' }] };
  const issues = await v.validate(wrongTypes);
  t.same(paths(issues).sort(), ['Patient.active', 'Patient.birthDate', 'Patient.name[1].given']);
  t.match(errors(issues).find((i) => i.expression?.[0] === 'Patient.active')?.diagnostics, /expected boolean, but got string/);
  const err = await thrown(v.assertValid(wrongTypes));
  t.equal(err.statusCode, 400);
  t.equal(err.code, 'GW_ERR_INVALID_RESOURCE');
  t.equal(err.outcome.issue.length, 3, 'every error issue is carried');

  t.same(paths(await v.validate({ resourceType: 'Patient', colour: 'blue' })), ['Patient.colour']);
  t.same(paths(await v.validate({ resourceType: 'Patient', name: { text: 'x' } })), ['Patient.name'], 'single value where an array is due');
  t.same(paths(await v.validate({ resourceType: 'Patient', birthDate: '1990-13-01' })), ['Patient.birthDate']);
  const obs = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, component: [{ code: { text: 'a' } }, { code: { text: 'b' }, valueInteger: 1.5 }] };
  t.same(paths(await v.validate(obs)), ['Observation.component[1].valueInteger'], 'choice elements named as sent');
});

t.test('unknown or missing resource types are precise 400s', async (t) => {
  const unknown = await v.validate({ resourceType: 'Patiente', name: [] });
  t.same(paths(unknown), ['resourceType']);
  t.match(unknown[0].diagnostics, /Unknown resource type "Patiente"/);
  t.equal((await thrown(v.assertValid({ resourceType: 'Patiente' }))).statusCode, 400);
  t.same(paths(await v.validate({ name: [] })), ['resourceType']);
  t.same(paths(await v.validate([{ resourceType: 'Patient' }])), ['Resource']);
  t.same(paths(await v.validate(null)), ['Resource']);
  t.same(paths(await v.validate({ resourceType: 'Resource' })), ['resourceType'], 'abstract types are not resources');
  const contained = await v.validate({ resourceType: 'Patient', contained: [{ resourceType: 'Nope', id: 'x' }] });
  t.same(paths(contained), ['Patient.contained[0].resourceType']);
});

const issueAt = (issues: OperationOutcomeIssue[], path: string) => errors(issues).find((i) => i.expression?.[0] === path);

t.test('codes of required bindings must be in the value set (400)', async (t) => {
  const gender = await v.validate({ resourceType: 'Patient', gender: 'bloke' });
  t.same(gender, [
    {
      severity: 'error',
      code: 'code-invalid',
      diagnostics: 'Value "bloke" is not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender (male, female, other, unknown)',
      expression: ['Patient.gender'],
    },
  ]);
  const err = await thrown(v.assertValid({ resourceType: 'Patient', gender: 'bloke' }));
  t.equal(err.statusCode, 400);
  t.equal(err.code, 'GW_ERR_INVALID_RESOURCE');
  t.equal(err.statusCode, (await thrown(v.assertValid({ ...patient([mrn]), gender: 'bloke' }))).statusCode, 'still 400 when a profile is claimed');

  const status = await v.validate({ resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } });
  t.same(paths(status), ['Observation.status']);
  t.match(status[0].diagnostics, /observation-status \(registered, preliminary, final, amended, corrected, cancelled, entered-in-error, unknown\)/);

  const arrays = await v.validate({
    resourceType: 'Patient',
    identifier: [{ use: 'usual', value: 'a' }, { use: 'weird', value: 'b' }],
    telecom: [{ system: 'phone', value: '1' }, { system: 'pigeon', value: '2', use: 'home' }],
    name: [{ use: 'maiden', family: 'A' }, { use: 'alias', family: 'B' }],
    address: [{ use: 'postal', city: 'x' }],
    contact: [{ gender: 'female', name: { text: 'c' } }, { gender: 'f', telecom: [{ system: 'email', use: 'office', value: 'x' }] }],
    text: { status: 'made-up', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' },
  });
  t.same(paths(arrays).sort(), [
    'Patient.address[0].use',
    'Patient.contact[1].gender',
    'Patient.contact[1].telecom[0].use',
    'Patient.identifier[1].use',
    'Patient.name[1].use',
    'Patient.telecom[1].system',
    'Patient.text.status',
  ]);
  t.ok(errors(arrays).every((i) => i.code === 'code-invalid'));
  t.match(issueAt(arrays, 'Patient.telecom[1].system')?.diagnostics, /"pigeon" .*contact-point-system \(phone, fax, email, pager, url, sms, other\)/);

  const contained = await v.validate({ resourceType: 'Patient', contained: [{ resourceType: 'Observation', id: 'o', status: 'done', code: { text: 'x' } }] });
  t.same(paths(contained), ['Patient.contained[0].status'], 'a contained resource is checked under its own type');

  const choice = await v.validate({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: 1, comparator: '~' } });
  t.same(paths(choice), ['Observation.valueQuantity.comparator'], 'a choice element is named as sent');
  const components = [{ code: { text: 'a' }, valueQuantity: { value: 1, comparator: '<' } }, { code: { text: 'b' }, valueQuantity: { value: 1, comparator: '≈' } }];
  const inComponent = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, component: components };
  t.same(paths(await v.validate(inComponent)), ['Observation.component[1].valueQuantity.comparator'], 'a choice element in a backbone array');
  const ext = { resourceType: 'Patient', extension: [{ url: 'https://example.org/e', valueAge: { value: 3, comparator: 'about' } }] };
  t.same(paths(await v.validate(ext)), ['Patient.extension[0].valueAge.comparator'], 'inside an extension value');

  const condition = (code: string, system = 'http://terminology.hl7.org/CodeSystem/condition-clinical') => ({
    resourceType: 'Condition',
    subject: { reference: 'Patient/p' },
    clinicalStatus: { coding: [{ system: 'http://snomed.info/sct', code: '55561003' }, { system, code }] },
  });
  t.same(paths(await v.validate(condition('active'))), []);
  t.same(paths(await v.validate(condition('dormant'))), ['Condition.clinicalStatus.coding[1].code'], 'a bound CodeableConcept');
  t.same(paths(await v.validate(condition('dormant', 'https://example.org/status'))), [], 'codings of other systems are not judged');
});

t.test('codes that must not be flagged', async (t) => {
  const p = {
    resourceType: 'Patient',
    gender: 'female',
    identifier: [{ use: 'official', system: 'urn:x', value: '1' }],
    telecom: [{ system: 'phone', use: 'mobile', value: '1' }],
    name: [{ use: 'maiden', family: 'A' }],
    photo: [{ contentType: 'image/x-made-up-type', data: 'AAAA' }],
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'zh-Hans-CN' }] } }],
    language: 'zh-CN',
    maritalStatus: { coding: [{ system: 'https://example.org/marital', code: 'whatever' }] },
  };
  t.same(await v.validate(p), [], 'valid codes; MIME types and languages are not enumerable; extensible bindings are open');
  const obs = {
    resourceType: 'Observation',
    status: 'amended',
    category: [{ coding: [{ system: 'https://example.org/categories', code: 'anything-at-all' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: 'not-a-loinc' }] },
    interpretation: [{ coding: [{ system: 'https://example.org/i', code: 'odd' }] }],
    valueQuantity: { value: 120, comparator: '>=', unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]-made-up' },
  };
  t.same(await v.validate(obs), [], 'extensible, preferred and example bindings; UCUM is not enumerable');
  const money = { resourceType: 'Invoice', status: 'draft', totalNet: { value: 1, currency: 'XYZ' } };
  t.same(paths(await v.validate(money)), [], 'ISO 4217 currencies are not enumerable');
});

t.test('dates must be on the calendar (400)', async (t) => {
  const at = async (r: object) => errors(await v.validate(r)).map((i) => [i.expression?.[0], i.code]);
  t.same(await at({ resourceType: 'Patient', birthDate: '2023-02-29' }), [['Patient.birthDate', 'value']], '2023 is not a leap year');
  t.same(await at({ resourceType: 'Patient', birthDate: '2024-02-29' }), [], '2024 is');
  t.same(await at({ resourceType: 'Patient', birthDate: '1900-02-29' }), [['Patient.birthDate', 'value']], 'nor is 1900');
  t.same(await at({ resourceType: 'Patient', birthDate: '2000-02-29' }), [], '2000 is');
  t.same(await at({ resourceType: 'Patient', birthDate: '1990-04-31' }), [['Patient.birthDate', 'value']]);
  t.same(await at({ resourceType: 'Patient', birthDate: '1990-04' }), [], 'partial dates');
  t.match((await v.validate({ resourceType: 'Patient', birthDate: '1990-02-30' }))[0]?.diagnostics, 'Invalid date "1990-02-30": February 1990 has 28 days, not 30');

  t.same(await at({ resourceType: 'Patient', birthDate: '1990-13-01' }), [['Patient.birthDate', 'structure']], 'month 13: one issue, not two');
  t.same(await at({ resourceType: 'Patient', birthDate: '1990-01-32' }), [['Patient.birthDate', 'structure']], 'day 32');

  const obs = (extra: object) => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, ...extra });
  t.same(await at(obs({ effectiveDateTime: '2023-02-29T10:00:00+08:00' })), [['Observation.effectiveDateTime', 'value']], 'dateTime in a choice');
  t.same(await at(obs({ effectiveDateTime: '2024-02-29T23:59:60Z' })), [], 'a leap second');
  t.same(await at(obs({ effectiveDateTime: '2024-02-29T24:00:00Z' })), [['Observation.effectiveDateTime', 'structure']], 'hour 24');
  t.same(await at(obs({ effectiveDateTime: '2024-02-29T10:60:00Z' })), [['Observation.effectiveDateTime', 'structure']], 'minute 60');
  t.same(await at(obs({ issued: '2023-06-31T10:00:00.000Z' })), [['Observation.issued', 'value']], 'instant');
  t.same(await at(obs({ issued: '2024-06-30T10:00:00.000Z' })), []);
  t.same(await at(obs({ effectivePeriod: { start: '2023-02-29', end: '2023-03-01' } })), [['Observation.effectivePeriod.start', 'value']], 'Period.start');
  t.same(await at({ resourceType: 'Patient', name: [{ text: 'a' }, { text: 'b', period: { end: '2021-09-31T08:00:00+08:00' } }] }), [['Patient.name[1].period.end', 'value']]);
  t.same(await at({ resourceType: 'Patient', deceasedDateTime: '2023-11-31' }), [['Patient.deceasedDateTime', 'value']]);
  t.same(await at({ resourceType: 'Patient', _birthDate: { extension: [{ url: 'https://example.org/e', valueDate: '2023-02-29' }] } }), [['Patient._birthDate.extension[0].valueDate', 'value']]);
  const err = await thrown(v.assertValid(obs({ issued: '2023-06-31T10:00:00.000Z' })));
  t.equal(err.statusCode, 400);
  t.equal(err.code, 'GW_ERR_INVALID_RESOURCE');
});

t.test('calendarProblem', async (t) => {
  t.equal(calendarProblem('2024-02-29T23:59:59.123+14:00'), undefined);
  t.equal(calendarProblem('2024'), undefined);
  t.match(calendarProblem('2024-00'), /month 00/);
  t.match(calendarProblem('2024-01-01T23:00:00+15:00'), /time zone offset \+?15:00/);
  t.match(calendarProblem('2024-01-01T23:00:61Z'), /second 61/);
  t.equal(calendarProblem('not a date'), undefined, 'the pattern is medplum\'s check');
});

t.test('reserved JavaScript property names are refused (medplum lets them through)', async (t) => {
  const proto = JSON.parse('{"resourceType":"Patient","__proto__":{"active":true},"name":[{"text":"a","constructor":"x"}]}');
  t.ok(Object.hasOwn(proto, '__proto__'), 'JSON.parse makes __proto__ an own property');
  t.same(paths(await v.validate(proto)), ['Patient.__proto__', 'Patient.name[0].constructor']);
  t.same(paths(await v.validate({ resourceType: 'Patient', _toString: { id: 'x' } })), ['Patient._toString']);
  t.equal((await thrown(v.assertValid(proto))).statusCode, 400);
});

t.test('cn-patient: identifier required', async (t) => {
  const issues = await v.validate(patient(undefined));
  t.same(paths(issues), ['Patient.identifier']);
  const err = await thrown(v.assertValid(patient(undefined)));
  t.equal(err.statusCode, 422);
  t.equal(err.code, 'GW_ERR_PROFILE_VIOLATION');
  t.same(await v.validate({ ...patient(undefined), meta: undefined }), [], 'without the profile claim the base type allows it');
});

t.test('cn-patient: ID card numbers must pass GB 11643, reported at the value', async (t) => {
  const wrongCheck = await v.validate(patient([mrn, idCard('110105194912310021')]));
  t.same(paths(wrongCheck), ['Patient.identifier[1].value']);
  t.match(wrongCheck[0].diagnostics, /cn-pat-3.*call for X/);

  const badDate = '33042419900229001' + idCardCheckChar('33042419900229001');
  const date = await v.validate(patient([idCard(badDate)]));
  t.same(paths(date), ['Patient.identifier[0].value']);
  t.match(date[0].diagnostics, /cn-pat-2.*not a calendar date/);

  const future = `330424${new Date().getFullYear() + 1}0101001`;
  t.match((await v.validate(patient([idCard(future + idCardCheckChar(future))])))[0]?.diagnostics, /in the future/);

  const short = await v.validate(patient([mrn, mrn, idCard('1101051949123100')]));
  t.same(paths(short), ['Patient.identifier[2].value']);
  t.match(short[0].diagnostics, /cn-pat-1.*18 characters, got 16/);

  t.same(paths(await v.validate(patient([{ system: ID_CARD_SYSTEM }]))), ['Patient.identifier[0].value'], 'ID card without value');
  t.same(await v.validate(patient([{ system: 'urn:other', value: '110105194912310021' }])), [], 'other systems are not checked');

  const two = await v.validate(patient([idCard('110105194912310021'), idCard('11010519491231002X'), idCard('1101051949123100AB')]));
  t.same(paths(two), ['Patient.identifier[0].value', 'Patient.identifier[2].value'], 'each failing identifier is reported');
  t.equal((await thrown(v.assertValid(patient([idCard('110105194912310021')])))).statusCode, 422);
});

t.test('the FHIRPath invariants agree with the ID card check', async (t) => {
  let seed = 20240601;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  let valid = 0;
  for (let i = 0; i < 60; i++) {
    const first17 = `330424${1800 + next(240)}${pad(1 + next(12), 2)}${pad(1 + next(31), 2)}${pad(next(1000), 3)}`;
    const check = i % 3 === 0 ? '0123456789Xx'[next(12)] : idCardCheckChar(first17);
    const value = first17 + check;
    const expected = checkIdCard(value).ok;
    if (expected) valid++;
    const issues = await v.validate(patient([idCard(value)]));
    t.equal(issues.length === 0, expected, `${value}: profile and checkIdCard agree`);
  }
  t.ok(valid > 10 && valid < 60, 'the sample mixes valid and invalid numbers');
});

t.test('claimed profiles must be known and of the right type', async (t) => {
  const unknown = await v.validate({ resourceType: 'Patient', meta: { profile: ['https://example.org/StructureDefinition/other'] } });
  t.same(paths(unknown), ['Patient.meta.profile[0]']);
  t.match(unknown[0].diagnostics, /https:\/\/example\.org\/StructureDefinition\/other is not known/);
  const err = await thrown(v.assertValid({ resourceType: 'Patient', meta: { profile: ['https://example.org/x'] } }));
  t.equal(err.statusCode, 422);
  t.match(err.message, /example\.org\/x/);

  const wrongType = await v.validate({ resourceType: 'Patient', meta: { profile: [CN_ORGANIZATION_PROFILE] }, identifier: [mrn] });
  t.match(wrongType[0]?.diagnostics, /constrains Organization, not Patient/);
  t.same(paths(await v.validate({ resourceType: 'Patient' }, undefined, { profiles: [CN_PATIENT_PROFILE] })), ['Patient.identifier'], 'extra profile option');
});

t.test('warnings do not fail assertValid', async (t) => {
  const p = patient([mrn], { managingOrganization: { reference: 'Patient/1' } });
  const issues = await v.validate(p);
  t.ok(issues.length > 0 && issues.every((i) => i.severity === 'warning'), 'a reference to the wrong type is a warning');
  await v.assertValid(p);
});

const level = (code: string) => ({ url: INSTITUTION_LEVEL_EXTENSION, valueCoding: { system: INSTITUTION_LEVEL_SYSTEM, code } });
const org = (id: string, lvl: string | undefined, partOf?: string, extra: Partial<Organization> = {}): Organization => ({
  resourceType: 'Organization',
  id,
  meta: { profile: [CN_ORGANIZATION_PROFILE] },
  name: `机构 ${id}`,
  ...(lvl ? { extension: [level(lvl)] } : {}),
  ...(partOf ? { partOf: { reference: partOf } } : {}),
  ...extra,
});

t.test('cn-organization: level required, partOf for township and village', async (t) => {
  t.same(await v.validate(org('c', 'county')), []);
  const grade = { url: HOSPITAL_GRADE_EXTENSION, valueCoding: { system: HOSPITAL_GRADE_SYSTEM, code: '2A', display: '二级甲等' } };
  t.same(await v.validate(org('c', 'county', undefined, { extension: [level('county'), grade] })), [], 'with a grade');

  t.same(paths(await v.validate(org('x', undefined))), ['Organization.extension'], 'no level');
  const other = await v.validate(org('x', undefined, undefined, { extension: [{ url: 'https://example.org/e', valueString: 'a' }] }));
  t.same(paths(other), ['Organization.extension']);
  t.match(other[0].diagnostics, /slice 'level'/);
  t.same(paths(await v.validate(org('x', 'city'))), ['Organization.extension[0].valueCoding'], 'unknown level code');
  const badGrade = { ...grade, valueCoding: { system: HOSPITAL_GRADE_SYSTEM, code: '4A' } };
  t.same(paths(await v.validate(org('c', 'county', undefined, { extension: [level('county'), badGrade] }))), ['Organization.extension[1].valueCoding']);
  t.same(paths(await v.validate(org('v', 'village'))), ['Organization.partOf'], 'village without partOf');
  t.same(paths(await v.validate(org('t', 'township'))), ['Organization.partOf'], 'township without partOf');
  t.equal((await thrown(v.assertValid(org('v', 'village')))).statusCode, 422);
});

function resolverOf(resources: Resource[]): ReferenceResolver {
  return async (ref) => resources.find((r) => `${r.resourceType}/${r.id}` === ref);
}

t.test('partOf chain: village → township → county', async (t) => {
  const county = org('county', 'county');
  const town = org('town', 'township', 'Organization/county');
  const town2 = org('town2', 'township', 'Organization/town');
  const village = org('vil', 'village', 'Organization/town');
  const resolve = resolverOf([county, town, town2, village, { resourceType: 'Patient', id: 'p' }]);

  t.same(await v.validate(village, resolve), []);
  t.same(await v.validate(town, resolve), []);
  t.same(await v.validate(county, resolve), []);

  const toCounty = await v.validate(org('v2', 'village', 'Organization/county'), resolve);
  t.same(paths(toCounty), ['Organization.partOf']);
  t.match(toCounty[0].diagnostics, /village institution must be part of a township-level institution; Organization\/county is county-level/);
  const err = await thrown(v.assertValid(org('v2', 'village', 'Organization/county'), resolve));
  t.equal(err.statusCode, 422);
  t.equal(err.code, 'GW_ERR_BUSINESS_RULE');

  t.match((await v.validate(town2, resolve))[0]?.diagnostics, /township institution must be part of a county-level/);
  t.match((await v.validate(org('c2', 'county', 'Organization/vil'), resolve))[0]?.diagnostics, /is village-level/, 'county under a village');
  t.match((await v.validate(org('v3', 'village', 'Organization/nope'), resolve))[0]?.diagnostics, /must be an existing Organization; it is not found/);
  t.match(errors(await v.validate(org('v4', 'village', 'Patient/p'), resolve))[0]?.diagnostics, /it is a Patient/);
  t.same(await v.validate(org('v2', 'village', 'Organization/county')), [], 'without a resolver the chain is not checked');
});

t.test('partOf chain: cycles are refused', async (t) => {
  const self = org('c', 'county', 'Organization/c');
  t.match((await v.validate(self, resolverOf([self])))[0]?.diagnostics, /loops/);

  const a = org('a', 'county', 'Organization/b');
  const b = org('b', 'county', 'Organization/a');
  t.match((await v.validate(a, resolverOf([a, b])))[0]?.diagnostics, /loops: Organization\/b → Organization\/a/);

  const t1 = org('t1', 'township', 'Organization/k1');
  const k1 = org('k1', 'county', 'Organization/k2');
  const k2 = org('k2', 'county', 'Organization/k1');
  const loop = await v.validate(t1, resolverOf([t1, k1, k2]));
  t.same(paths(loop), ['Organization.partOf']);
  t.match(loop[0].diagnostics, /loops/, 'a loop above the direct parent');

  // A new organisation (no id yet) whose parent's chain comes back to it through urn:uuid references.
  const fresh = org('x', 'township', 'urn:uuid:2') as Organization;
  delete fresh.id;
  const parent = { ...org('y', 'county', 'urn:uuid:1'), id: undefined };
  const byUrn: ReferenceResolver = async (ref) => (ref === 'urn:uuid:1' ? fresh : ref === 'urn:uuid:2' ? parent : undefined);
  t.match((await v.validate(fresh, byUrn))[0]?.diagnostics, /loops back to this organisation/);
});

t.test('regression: a bare number where a complex type belongs is refused', async (t) => {
  const issues = await v.validate({ resourceType: 'Patient', identifier: [7], maritalStatus: true });
  t.same(
    issues.filter((i) => i.severity === 'error').map((i) => i.expression?.[0]),
    ['Patient.identifier[0]', 'Patient.maritalStatus'],
  );
});

t.test('regression: an array of 300,000 items does not exhaust the stack', async (t) => {
  const issues = await v.validate({ resourceType: 'Patient', identifier: Array.from({ length: 300_000 }, () => ({ system: 'urn:x', value: 'v' })) });
  t.same(issues.filter((i) => i.severity === 'error'), []);
});
