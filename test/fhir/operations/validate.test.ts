import t from 'tap';
import { validateResource } from '@medplum/core';
import type { OperationOutcome, Organization, Parameters, Patient } from '@medplum/fhirtypes';
import { GatewayError } from '../../../src/errors.js';
import { OPERATION_DEFINITION, runValidate } from '../../../src/fhir/operations/validate.js';
import { CN_ORGANIZATION_PROFILE, CN_PATIENT_PROFILE, ID_CARD_SYSTEM, INSTITUTION_LEVEL_EXTENSION, INSTITUTION_LEVEL_SYSTEM } from '../../../src/fhir/systems.js';
import { createValidator, type Validator } from '../../../src/fhir/validation.js';

const PROFILES = new URL('../../../profiles/', import.meta.url).pathname;
let v: Validator;
t.before(async () => {
  v = await createValidator(PROFILES);
});

const good: Patient = { resourceType: 'Patient', meta: { profile: [CN_PATIENT_PROFILE] }, identifier: [{ system: ID_CARD_SYSTEM, value: '11010519491231002X' }] };
const bad: Patient = { resourceType: 'Patient', meta: { profile: [CN_PATIENT_PROFILE] }, identifier: [{ system: ID_CARD_SYSTEM, value: '110105194912310021' }] };
const params = (...parameter: NonNullable<Parameters['parameter']>): Parameters => ({ resourceType: 'Parameters', parameter });

const severities = (o: OperationOutcome) => o.issue.map((i) => `${i.severity}:${i.code}`);

async function thrown(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a GatewayError');
}

t.test('a valid bare resource gives one informational issue', async (t) => {
  const o = await runValidate(v, good);
  t.same(severities(o), ['information:informational']);
  t.match(o.issue[0].diagnostics, /Patient is valid/);
});

t.test('an invalid resource gives all its issues', async (t) => {
  const o = await runValidate(v, { ...bad, active: 'yes' });
  t.same(o.issue.map((i) => i.expression?.[0]).sort(), ['Patient.active', 'Patient.identifier[0].value']);
  t.notOk(o.issue.some((i) => i.severity === 'information'), 'no "valid" note among errors');
});

t.test('the Parameters form: resource, mode and profile', async (t) => {
  t.same(severities(await runValidate(v, params({ name: 'resource', resource: good }))), ['information:informational']);
  const o = await runValidate(v, params({ name: 'resource', resource: bad }, { name: 'mode', valueCode: 'create' }));
  t.same(o.issue.map((i) => i.expression?.[0]), ['Patient.identifier[0].value']);

  const plain: Patient = { resourceType: 'Patient', name: [{ text: '李四' }] };
  t.same(severities(await runValidate(v, plain)), ['information:informational'], 'no profile claimed: valid R4');
  const withProfile = await runValidate(v, params({ name: 'resource', resource: plain }, { name: 'profile', valueUri: CN_PATIENT_PROFILE }));
  t.same(withProfile.issue.map((i) => i.expression?.[0]), ['Patient.identifier'], 'profile parameter applies cn-patient');
  const viaQuery = await runValidate(v, plain, { profile: CN_PATIENT_PROFILE, mode: 'profile' });
  t.same(viaQuery.issue.map((i) => i.expression?.[0]), ['Patient.identifier'], 'profile from the query');

  const unknown = await runValidate(v, plain, { profile: 'https://example.org/StructureDefinition/none' });
  t.match(unknown.issue[0].diagnostics, /none is not known/);
});

t.test('a Parameters resource that is not an invocation is validated as itself', async (t) => {
  const p = params({ name: 'other', valueString: 'x' });
  t.same(severities(await runValidate(v, p)), ['information:informational']);
  const broken = { resourceType: 'Parameters', parameter: [{ name: 'other', valueString: 1 }] };
  t.same((await runValidate(v, broken)).issue.map((i) => i.expression?.[0]), ['Parameters.parameter[0].valueString']);
});

t.test('modes', async (t) => {
  const noId = await runValidate(v, good, { mode: 'update' });
  t.same(noId.issue.map((i) => `${i.code}:${i.expression?.[0]}`), ['required:Patient.id']);
  t.same(severities(await runValidate(v, { ...good, id: 'p1' }, { mode: 'update' })), ['information:informational']);
  t.same(severities(await runValidate(v, undefined, { mode: 'delete' })), ['information:informational'], 'delete needs no resource');
});

t.test('invocations that cannot run are 400s', async (t) => {
  const cases: [string, Promise<unknown>, RegExp][] = [
    ['unknown mode', runValidate(v, good, { mode: 'merge' }), /Unknown mode "merge"/],
    ['no resource', runValidate(v, undefined), /No resource to validate/],
    ['no resource in Parameters', runValidate(v, params({ name: 'mode', valueCode: 'create' })), /No resource to validate/],
    ['profile mode without profile', runValidate(v, good, { mode: 'profile' }), /needs the profile parameter/],
    ['resource parameter without resource', runValidate(v, params({ name: 'resource', valueString: 'x' })), /must carry a resource/],
    ['mode twice', runValidate(v, params({ name: 'resource', resource: good }, { name: 'mode', valueCode: 'create' }, { name: 'mode', valueCode: 'update' })), /more than once/],
    ['conflicting query', runValidate(v, params({ name: 'resource', resource: good }, { name: 'mode', valueCode: 'create' }), { mode: 'update' }), /different values/],
    ['mode without a code', runValidate(v, params({ name: 'resource', resource: good }, { name: 'mode', valueInteger: 1 })), /needs a valueCode/],
  ];
  for (const [name, p, re] of cases) {
    const err = await thrown(p);
    t.equal(err.statusCode, 400, name);
    t.match(err.message, re, name);
  }
});

t.test('organisation rules use the resolver', async (t) => {
  const level = (code: string) => [{ url: INSTITUTION_LEVEL_EXTENSION, valueCoding: { system: INSTITUTION_LEVEL_SYSTEM, code } }];
  const county: Organization = { resourceType: 'Organization', id: 'c', meta: { profile: [CN_ORGANIZATION_PROFILE] }, name: '县医院', extension: level('county') };
  const village: Organization = { ...county, id: 'v', name: '村卫生室', extension: level('village'), partOf: { reference: 'Organization/c' } };
  const o = await runValidate(v, village, {}, async (ref) => (ref === 'Organization/c' ? county : undefined));
  t.same(o.issue.map((i) => `${i.code}:${i.expression?.[0]}`), ['business-rule:Organization.partOf']);
});

t.test('OPERATION_DEFINITION is a valid R4 OperationDefinition', async (t) => {
  t.same(validateResource(OPERATION_DEFINITION), []);
  t.equal(OPERATION_DEFINITION.code, 'validate');
  t.same(OPERATION_DEFINITION.parameter?.map((p) => `${p.use}:${p.name}`), ['in:resource', 'in:mode', 'in:profile', 'out:return']);
});
