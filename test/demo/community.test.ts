import t from 'tap';
import type { Bundle, BundleEntry, Identifier, Organization, Patient, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { loadDemoCommunity, readDemoCommunity } from '../../src/demo/index.js';
import {
  CN_ORGANIZATION_PROFILE,
  CN_PATIENT_PROFILE,
  HOSPITAL_GRADE_EXTENSION,
  ID_CARD_SYSTEM,
  INSTITUTION_LEVEL_EXTENSION,
  USCC_SYSTEM,
  institutionOfMrnSystem,
} from '../../src/fhir/systems.js';
import { createValidator, type ReferenceResolver } from '../../src/fhir/validation.js';
import { checkIdCard } from '../../src/mpi/index.js';

const PROFILES = new URL('../../profiles/', import.meta.url).pathname;

let bundle: Bundle;
let entries: BundleEntry[];
t.before(async () => {
  bundle = await readDemoCommunity();
  entries = bundle.entry ?? [];
});

const ofType = <T extends Resource>(type: T['resourceType']): T[] =>
  entries.map((e) => e.resource).filter((r): r is T => r?.resourceType === type);
const byUrl = (url: string | undefined): Resource | undefined => entries.find((e) => e.fullUrl === url)?.resource;
const levelOf = (o: Resource | undefined) =>
  (o as Organization | undefined)?.extension?.find((x) => x.url === INSTITUTION_LEVEL_EXTENSION)?.valueCoding?.code;

/** GB 32100-2015 check character of a unified social credit code (independent of the source). */
function usccValid(code: string): boolean {
  const chars = '0123456789ABCDEFGHJKLMNPQRTUWXY';
  const weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
  if (!/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(code)) return false;
  const sum = weights.reduce((a, w, i) => a + chars.indexOf(code[i]) * w, 0);
  return chars[(31 - (sum % 31)) % 31] === code[17];
}

/** Every `reference` string anywhere in a resource. */
function references(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => references(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else references(v, out);
    }
  }
  return out;
}

t.test('a transaction of conditional creates with urn:uuid fullUrls', async (t) => {
  t.equal(bundle.type, 'transaction');
  const urls = entries.map((e) => e.fullUrl);
  t.equal(new Set(urls).size, urls.length, 'fullUrls are unique');
  for (const e of entries) {
    const r = e.resource as Resource & { identifier?: Identifier[] };
    t.match(e.fullUrl, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    t.equal(e.request?.method, 'POST');
    t.equal(e.request?.url, r.resourceType);
    const m = /^identifier=([^|]+)\|(.+)$/.exec(e.request?.ifNoneExist ?? '');
    t.ok(m, `${e.fullUrl} has ifNoneExist on an identifier`);
    t.ok(r.identifier?.some((i) => i.system === m?.[1] && i.value === m?.[2]), `${r.resourceType} carries the identifier it is matched on`);
  }
  const keys = entries.map((e) => e.request?.ifNoneExist);
  t.equal(new Set(keys).size, keys.length, 'no two entries match on the same identifier');
  for (const e of entries) {
    for (const ref of references(e.resource)) {
      t.ok(ref.startsWith('urn:uuid:') && byUrl(ref), `${e.resource?.resourceType} reference ${ref} resolves inside the Bundle`);
    }
  }
});

t.test('the community: county → 2 townships → 3 villages', async (t) => {
  const orgs = ofType<Organization>('Organization');
  const county = orgs.filter((o) => levelOf(o) === 'county');
  const towns = orgs.filter((o) => levelOf(o) === 'township');
  const villages = orgs.filter((o) => levelOf(o) === 'village');
  t.equal(county.length, 1);
  t.equal(towns.length, 2);
  t.equal(villages.length, 3);
  t.equal(county[0].extension?.find((x) => x.url === HOSPITAL_GRADE_EXTENSION)?.valueCoding?.code, '2A', '二级甲等');
  const countyUrl = entries.find((e) => e.resource === county[0])?.fullUrl;
  for (const town of towns) t.equal(town.partOf?.reference, countyUrl, `${town.name} is part of the county hospital`);
  const perTown = towns.map((town) => villages.filter((v) => byUrl(v.partOf?.reference) === town).length);
  t.same(perTown, [2, 1]);
  for (const o of orgs) {
    t.ok(o.meta?.profile?.includes(CN_ORGANIZATION_PROFILE), `${o.name} claims cn-organization`);
    t.match(o.name, /[\u4e00-\u9fff]/, 'Chinese name');
    const code = o.identifier?.find((i) => i.system === USCC_SYSTEM)?.value ?? '';
    t.ok(usccValid(code), `${o.name}: unified social credit code ${code} is well-formed`);
  }
});

t.test('staff, patients and results', async (t) => {
  const practitioners = ofType('Practitioner');
  t.ok(practitioners.length >= 6, 'about six practitioners');
  const roles = ofType<PractitionerRole>('PractitionerRole');
  for (const p of practitioners) {
    const url = entries.find((e) => e.resource === p)?.fullUrl;
    const role = roles.find((r) => r.practitioner?.reference === url);
    t.equal(byUrl(role?.organization?.reference)?.resourceType, 'Organization', 'each practitioner works at a member institution');
  }

  const patients = ofType<Patient>('Patient');
  t.ok(patients.length >= 3 && patients.length <= 5);
  const orgCodes = new Set(ofType<Organization>('Organization').map((o) => o.identifier?.[0]?.value));
  for (const p of patients) {
    t.ok(p.meta?.profile?.includes(CN_PATIENT_PROFILE));
    const id = p.identifier?.find((i) => i.system === ID_CARD_SYSTEM)?.value ?? '';
    const checked = checkIdCard(id);
    t.ok(checked.ok, 'valid ID card number');
    t.equal(checked.ok && checked.birthDate, p.birthDate, 'birthDate agrees with the ID card');
    t.equal(checked.ok && checked.sex, p.gender, 'gender agrees with the ID card');
    const mrns = (p.identifier ?? []).map((i) => institutionOfMrnSystem(i.system)).filter((x) => x);
    t.ok(mrns.length > 0 && mrns.every((c) => orgCodes.has(c)), 'local MRNs of member institutions');
  }

  const codes = ofType('Observation').map((o) => (o as { code: { coding: { code: string }[] } }).code.coding[0].code);
  t.ok(codes.includes('4548-4'), 'HbA1c');
  t.ok(codes.includes('14771-0'), 'fasting glucose, in moles as Chinese labs report it');
});

t.test('every resource is valid against base R4, its profiles and the partOf chain', async (t) => {
  const v = await createValidator(PROFILES);
  const resolve: ReferenceResolver = async (ref) => byUrl(ref);
  for (const e of entries) {
    const issues = await v.validate(e.resource, resolve);
    t.same(issues, [], `${e.resource?.resourceType} ${e.fullUrl}`);
  }

  // The same check catches a village moved directly under the county hospital.
  const village = ofType<Organization>('Organization').find((o) => levelOf(o) === 'village') as Organization;
  const countyUrl = entries.find((e) => levelOf(e.resource) === 'county')?.fullUrl;
  const moved = { ...village, partOf: { reference: countyUrl } };
  const issues = await v.validate(moved, resolve);
  t.same(issues.map((i) => i.expression?.[0]), ['Organization.partOf']);
});

t.test('loadDemoCommunity hands the Bundle to the transaction function', async (t) => {
  const seen: Bundle[] = [];
  const result = await loadDemoCommunity(async (b) => {
    seen.push(b);
    return { loaded: b.entry?.length };
  });
  t.equal(seen.length, 1);
  t.same(seen[0], bundle);
  t.same(result, { loaded: entries.length });
  await t.rejects(
    loadDemoCommunity(async () => {
      throw new Error('store down');
    }),
    /store down/,
    'errors of the transaction propagate',
  );
});
