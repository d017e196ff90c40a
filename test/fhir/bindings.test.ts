import t from 'tap';
import { MAX_LISTED_CODES, codeViolation, codingViolation, expandValueSet, unversioned } from '../../src/fhir/bindings.js';

const FHIR_VS = 'http://hl7.org/fhir/ValueSet/';

t.test('a ValueSet including a whole CodeSystem', async (t) => {
  const gender = expandValueSet(`${FHIR_VS}administrative-gender|4.0.1`);
  t.ok(gender);
  t.same([...(gender?.codes ?? [])], ['male', 'female', 'other', 'unknown']);
  t.equal(gender?.url, `${FHIR_VS}administrative-gender`, 'the version is dropped');
  t.equal(expandValueSet(`${FHIR_VS}administrative-gender`), gender, 'cached per url, whatever the version');
  t.same([...(gender?.bySystem.keys() ?? [])], ['http://hl7.org/fhir/administrative-gender']);
});

t.test('nested concepts, listed concepts, imported ValueSets', async (t) => {
  const nameUse = expandValueSet(`${FHIR_VS}name-use`);
  t.ok(nameUse?.codes.has('old') && nameUse.codes.has('maiden'), '"maiden" is a child of "old" in the CodeSystem');
  t.same([...(expandValueSet(`${FHIR_VS}immunization-status`)?.codes ?? [])], ['completed', 'entered-in-error', 'not-done'], 'listed concepts only');
  t.ok((expandValueSet(`${FHIR_VS}all-types`)?.codes.size ?? 0) > 150, 'data types, resource types and abstract types');
  t.ok(expandValueSet(`${FHIR_VS}all-types`)?.codes.has('Patient'));
  const yesNo = expandValueSet(`${FHIR_VS}yesnodontknow`);
  t.same([...(yesNo?.codes ?? [])].sort(), ['N', 'Y', 'asked-unknown'], 'a v2 ValueSet imported, plus a listed concept');
  const timing = expandValueSet(`${FHIR_VS}event-timing`);
  t.ok(timing?.codes.has('MORN') && timing.codes.has('HS') && timing.codes.has('AC'), 'FHIR and v3 systems combined');
});

t.test('ValueSets that cannot be enumerated are not expanded', async (t) => {
  t.equal(expandValueSet(`${FHIR_VS}mimetypes`), undefined, 'MIME types (urn:ietf:bcp:13)');
  t.equal(expandValueSet(`${FHIR_VS}ucum-units`), undefined, 'UCUM');
  t.equal(expandValueSet(`${FHIR_VS}currencies`), undefined, 'ISO 4217');
  t.equal(expandValueSet(`${FHIR_VS}observation-codes`), undefined, 'all of LOINC');
  t.equal(expandValueSet('https://example.org/ValueSet/unknown'), undefined, 'unknown url');
  t.equal(expandValueSet('https://example.org/ValueSet/unknown'), undefined, 'a miss is cached too');
});

t.test('violations name the value, the ValueSet and its codes', async (t) => {
  const gender = expandValueSet(`${FHIR_VS}administrative-gender`);
  if (!gender) throw new Error('administrative-gender must expand');
  t.equal(codeViolation(gender, 'female'), undefined);
  t.equal(codeViolation(gender, 'bloke'), `Value "bloke" is not in the required value set ${FHIR_VS}administrative-gender (male, female, other, unknown)`);
  t.ok(codeViolation(gender, 'Female'), 'codes are case-sensitive');

  const types = expandValueSet(`${FHIR_VS}all-types`);
  if (!types) throw new Error('all-types must expand');
  const message = codeViolation(types, 'Patiente') ?? '';
  const listed = /\((.*)\)$/.exec(message)?.[1] ?? '';
  t.equal(listed.split(', ').length, MAX_LISTED_CODES + 1, 'at most ten codes, then a count');
  t.match(listed, new RegExp(`… ${types.codes.size - MAX_LISTED_CODES} more$`));

  const clinical = expandValueSet(`${FHIR_VS}condition-clinical`);
  if (!clinical) throw new Error('condition-clinical must expand');
  const system = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
  t.equal(codingViolation(clinical, system, 'active'), undefined);
  t.match(codingViolation(clinical, system, 'dormant'), /^Code "dormant" of system http:\/\/terminology\.hl7\.org\/CodeSystem\/condition-clinical is not in the required value set .*condition-clinical \(active, recurrence/);
  t.equal(codingViolation(clinical, 'http://snomed.info/sct', '55561003'), undefined, 'another system is not judged');
  t.equal(codingViolation(clinical, undefined, 'dormant'), undefined, 'nor a coding without system');
});

t.test('unversioned', async (t) => {
  t.equal(unversioned('http://x/ValueSet/a|4.0.1'), 'http://x/ValueSet/a');
  t.equal(unversioned('http://x/ValueSet/a'), 'http://x/ValueSet/a');
});
