import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { evalFhirPath, validateResource } from '@medplum/core';
import type { Organization, Patient, StructureDefinition } from '@medplum/fhirtypes';
import { searchParametersOf } from '../../src/fhir/definitions.js';
import { generateSnapshot, loadProfiles, ProfileError } from '../../src/fhir/profiles.js';
import {
  CN_ORGANIZATION_PROFILE,
  CN_PATIENT_PROFILE,
  HOSPITAL_GRADE_EXTENSION,
  HOSPITAL_GRADE_SYSTEM,
  INSTITUTION_LEVEL_EXTENSION,
  INSTITUTION_LEVEL_SYSTEM,
  ORGANIZATION_GRADE_SEARCH_PARAMETER,
  ORGANIZATION_LEVEL_SEARCH_PARAMETER,
  ENCOUNTER_FINISHED_TOPIC,
  LAB_RESULT_TOPIC,
} from '../../src/fhir/systems.js';
import { BACKPORT } from '../../src/subscriptions/index.js';

const PROFILES = new URL('../../profiles/', import.meta.url).pathname;

/** A copy of profiles/ in a temp folder, with files added or replaced. */
async function profilesWith(t: Test, files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'profiles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const name of await readdir(PROFILES)) await writeFile(join(dir, name), await readFile(join(PROFILES, name)));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

function patientProfile(elements: unknown[], extra: Record<string, unknown> = {}): StructureDefinition {
  return {
    resourceType: 'StructureDefinition',
    url: 'https://example.org/StructureDefinition/test-patient',
    name: 'TestPatient',
    status: 'draft',
    kind: 'resource',
    abstract: false,
    type: 'Patient',
    baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
    derivation: 'constraint',
    differential: { element: elements as never },
    ...extra,
  };
}

t.test('the community folder loads, with the URLs systems.ts names', async (t) => {
  const loaded = await loadProfiles(PROFILES);
  t.same(loaded.structureDefinitions.map((s) => s.url).sort(), [CN_ORGANIZATION_PROFILE, CN_PATIENT_PROFILE, `${BACKPORT}/backport-subscription`].sort());
  t.same(
    loaded.others.filter((r) => (r.resourceType as string) === 'SubscriptionTopic').map((r) => (r as { url?: string }).url).sort(),
    [ENCOUNTER_FINISHED_TOPIC, LAB_RESULT_TOPIC].sort(),
  );
  t.same(loaded.extensions.map((s) => s.url).sort(), [HOSPITAL_GRADE_EXTENSION, INSTITUTION_LEVEL_EXTENSION].sort());
  t.same(loaded.codeSystems.map((c) => c.url).sort(), [HOSPITAL_GRADE_SYSTEM, INSTITUTION_LEVEL_SYSTEM].sort());
  t.same(loaded.searchParameters.map((s) => s.url).sort(), [ORGANIZATION_GRADE_SEARCH_PARAMETER, ORGANIZATION_LEVEL_SEARCH_PARAMETER].sort());
  for (const sd of [...loaded.structureDefinitions, ...loaded.extensions]) {
    t.ok((sd.snapshot?.element.length ?? 0) > (sd.differential?.element.length ?? 0), `${sd.name} has a snapshot`);
  }
  const levelCodes = loaded.codeSystems.find((c) => c.url === INSTITUTION_LEVEL_SYSTEM)?.concept?.map((c) => c.code);
  t.same(levelCodes, ['county', 'township', 'village']);
});

t.test('search parameters are registered and extract the level', async (t) => {
  await loadProfiles(PROFILES);
  const level = searchParametersOf('Organization').level;
  t.equal(level?.url, ORGANIZATION_LEVEL_SEARCH_PARAMETER);
  t.ok(searchParametersOf('Organization').grade, 'grade is registered too');
  const org: Organization = {
    resourceType: 'Organization',
    extension: [{ url: INSTITUTION_LEVEL_EXTENSION, valueCoding: { system: INSTITUTION_LEVEL_SYSTEM, code: 'township' } }],
  };
  t.same(evalFhirPath(level?.expression as string, org), [{ system: INSTITUTION_LEVEL_SYSTEM, code: 'township' }]);
});

t.test('extension slices get url and value[x] from the extension definition', async (t) => {
  const loaded = await loadProfiles(PROFILES);
  const org = loaded.structureDefinitions.find((s) => s.url === CN_ORGANIZATION_PROFILE) as StructureDefinition;
  const el = (id: string) => org.snapshot?.element.find((e) => e.id === id);
  t.equal(el('Organization.extension:level.url')?.fixedUri, INSTITUTION_LEVEL_EXTENSION);
  t.same(el('Organization.extension:level.value[x]')?.type?.map((x) => x.code), ['Coding']);
  t.equal(el('Organization.extension:level')?.min, 1);
  t.equal(el('Organization.extension')?.slicing?.discriminator?.[0]?.path, 'url', 'extension slicing added');
  const ids = org.snapshot?.element.map((e) => e.id) ?? [];
  t.ok(ids.indexOf('Organization.extension:level') === ids.indexOf('Organization.extension') + 1, 'slice follows the sliced element');
});

t.test('a differential into a data type expands its children', async (t) => {
  const sd = generateSnapshot(
    patientProfile([
      { id: 'Patient', path: 'Patient' },
      { id: 'Patient.identifier.system', path: 'Patient.identifier.system', min: 1 },
      { id: 'Patient.gender', path: 'Patient.gender', min: 1 },
    ]),
    { file: 'test-patient.json', extensions: new Map() },
  );
  t.equal(sd.snapshot?.element.find((e) => e.id === 'Patient.identifier.system')?.min, 1);
  const p: Patient = { resourceType: 'Patient', identifier: [{ system: 'urn:x', value: '1' }, { value: '2' }] };
  let issues: unknown;
  try {
    validateResource(p, { profile: sd });
  } catch (err) {
    issues = (err as { outcome: { issue: { expression?: string[] }[] } }).outcome.issue.map((i) => i.expression?.[0]);
  }
  t.same(issues, ['Patient.identifier[1].system', 'Patient.gender']);
});

t.test('a bad differential path fails loading, naming the file and the path', async (t) => {
  const dir = await profilesWith(t, {
    'broken.json': patientProfile([{ id: 'Patient', path: 'Patient' }, { id: 'Patient.identifer', path: 'Patient.identifer', min: 1 }]),
  });
  const err = await loadProfiles(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProfileError, 'ProfileError');
  t.match((err as Error).message, /broken\.json: element "Patient\.identifer": does not exist in the base Patient/);
  t.equal((err as ProfileError).elementPath, 'Patient.identifer');
});

t.test('other bad profiles fail loading with a precise message', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['bad child of a primitive', patientProfile([{ id: 'Patient.gender.foo', path: 'Patient.gender.foo' }]), /"Patient\.gender\.foo": does not exist/],
    ['path and id disagree', patientProfile([{ id: 'Patient.gender', path: 'Patient.active' }]), /does not match the id/],
    ['wrong root', patientProfile([{ id: 'Person.gender', path: 'Person.gender' }]), /must start with Patient/],
    ['loosened min', patientProfile([{ id: 'Patient.link.other', path: 'Patient.link.other', min: 0 }]), /loosens the base minimum 1/],
    ['loosened max', patientProfile([{ id: 'Patient.gender', path: 'Patient.gender', max: '*' }]), /loosens the base maximum 1/],
    ['min above max', patientProfile([{ id: 'Patient.name', path: 'Patient.name', min: 2, max: '1' }]), /min 2 is above max 1/],
    ['type not in base', patientProfile([{ id: 'Patient.deceased[x]', path: 'Patient.deceased[x]', type: [{ code: 'string' }] }]), /type string is not allowed/],
    [
      'constraint that does not parse',
      patientProfile([{ id: 'Patient', path: 'Patient', constraint: [{ key: 'x-1', severity: 'error', human: 'x', expression: 'name.where(' }] }]),
      /constraint x-1 does not parse/,
    ],
    [
      'unknown extension',
      patientProfile([{ id: 'Patient.extension:x', path: 'Patient.extension', sliceName: 'x', type: [{ code: 'Extension', profile: ['https://example.org/x'] }] }]),
      /extension https:\/\/example\.org\/x is not defined/,
    ],
    ['slice without slicing', patientProfile([{ id: 'Patient.name:x', path: 'Patient.name', sliceName: 'x' }]), /slice on an element without slicing/],
    ['profile of a profile', patientProfile([{ id: 'Patient', path: 'Patient' }], { baseDefinition: CN_PATIENT_PROFILE }), /profiles of profiles are not supported/],
    ['duplicate url', patientProfile([{ id: 'Patient', path: 'Patient' }], { url: CN_PATIENT_PROFILE }), /already defined in/],
    ['invalid JSON', '{"resourceType": "StructureDefinition",', /not valid JSON/],
    [
      'search parameter that does not parse',
      { resourceType: 'SearchParameter', url: 'https://example.org/sp', code: 'x', base: ['Patient'], type: 'token', expression: 'Patient.(' },
      /expression does not parse/,
    ],
  ];
  for (const [name, content, re] of cases) {
    const dir = await profilesWith(t, { 'zz-bad.json': content });
    await t.rejects(loadProfiles(dir), re, name);
    await t.rejects(loadProfiles(dir), /zz-bad\.json/, `${name}: names the file`);
  }
});

t.test('a missing folder fails loading', async (t) => {
  await t.rejects(loadProfiles(join(tmpdir(), 'no-such-profiles-folder')), /cannot read the profiles folder/);
});
