/**
 * Seed data for the search tests: a small county community with patients (Chinese names with
 * their pinyin, ID-card identifiers), organisations in a hierarchy, encounters and observations.
 */
import type { Resource } from '@medplum/fhirtypes';
import { writeVersions, type Queryable } from '../../../src/store/index.js';
import { GatewayError } from '../../../src/errors.js';
import { searchBundle, type SearchOptions, type SearchQuery } from '../../../src/store/search/index.js';

export const BASE = 'https://hie.example.cn/fhir';
export const OPTS: SearchOptions = { baseUrl: BASE, defaultCount: 20, maxCount: 100, maxIncludes: 50 };
export const ID_CARD = 'urn:oid:2.16.156.10011.1.1';
export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';

const patient = (id: string, extra: Record<string, unknown>): Resource => ({ resourceType: 'Patient', id, active: true, ...extra }) as Resource;

export const RESOURCES: Resource[] = [
  { resourceType: 'Organization', id: 'org1', name: '县人民医院 County People’s Hospital', identifier: [{ system: 'urn:uscc', value: '12330000A' }] },
  { resourceType: 'Organization', id: 'org2', name: '城关镇卫生院 Chengguan Health Centre', partOf: { reference: 'Organization/org1' } },
  { resourceType: 'Organization', id: 'org3', name: '东村卫生室 Dongcun Clinic', partOf: { reference: 'Organization/org2' } },
  patient('p1', {
    meta: { tag: [{ system: 'urn:county:tag', code: 'vip' }], profile: ['http://county.example.cn/StructureDefinition/cn-patient'], source: 'urn:his:hosp-a' },
    identifier: [{ system: ID_CARD, value: '110101199003071234', type: { text: '居民身份证' } }],
    name: [
      { use: 'official', family: '张', given: ['三'] },
      { use: 'usual', family: 'Zhang', given: ['San'] },
    ],
    gender: 'male',
    birthDate: '1990-03-07',
    managingOrganization: { reference: 'Organization/org2' },
  }),
  patient('p2', {
    identifier: [{ system: ID_CARD, value: '110101198511201111' }],
    name: [
      { family: '李', given: ['四'] },
      { family: 'Li', given: ['Si'] },
    ],
    gender: 'female',
    birthDate: '1985-11-20',
    generalPractitioner: [{ reference: 'Organization/org3' }],
  }),
  patient('p3', { name: [{ family: 'Müller', given: ['José'] }], gender: 'other', birthDate: '1990', managingOrganization: { reference: 'Organization/org1' } }),
  patient('p4', { name: [{ family: 'Wang', given: ['Wu'] }], gender: 'male' }),
  {
    resourceType: 'Encounter',
    id: 'e1',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: 'Patient/p1' },
    period: { start: '2024-03-01', end: '2024-03-03' },
    serviceProvider: { reference: 'Organization/org2' },
  },
  {
    resourceType: 'Encounter',
    id: 'e2',
    status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: 'Patient/p2' },
    period: { start: '2024-05-10T09:00:00+08:00' },
  },
  obs('o1', 'p1', '4548-4', 'Hemoglobin A1c', { effectiveDateTime: '2024-03-01T08:30:00+08:00', valueQuantity: qty(6.8, '%'), encounter: { reference: 'Encounter/e1' } }),
  obs('o2', 'p2', '4548-4', 'Hemoglobin A1c', { effectiveDateTime: '2024-03-15', valueQuantity: qty(7.2, '%') }),
  obs('o3', 'p1', '8480-6', 'Systolic blood pressure', {
    effectiveDateTime: '2024-04-01T10:00:00Z',
    valueQuantity: qty(120, 'mm[Hg]'),
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  }),
  {
    resourceType: 'Observation',
    id: 'o4',
    status: 'final',
    code: { coding: [{ system: 'urn:county:lab', code: 'GLU' }], text: '血糖 Glucose' },
    subject: { reference: 'Patient/p3' },
    performer: [{ reference: 'Organization/org1' }],
    effectiveDateTime: '2023-12-31',
    valueQuantity: { value: 5.4, unit: 'mmol/L', system: UCUM, code: 'mmol/L' },
  },
  obs('o5', 'p3', '4548-4', 'Hemoglobin A1c', { status: 'preliminary', effectivePeriod: { start: '2024-06-01', end: '2024-06-30' } }),
  obs('o7', undefined, '4548-4', 'Hemoglobin A1c', { subject: { identifier: { system: ID_CARD, value: '110101199003071234' } }, valueQuantity: qty(6.1, '%') }),
  { resourceType: 'RiskAssessment', id: 'r1', status: 'final', subject: { reference: 'Patient/p1' }, prediction: [{ probabilityDecimal: 0.25 }] },
  { resourceType: 'RiskAssessment', id: 'r2', status: 'final', subject: { reference: 'Patient/p2' }, prediction: [{ probabilityDecimal: 0.8 }] },
  { resourceType: 'ValueSet', id: 'vs1', status: 'active', url: 'http://county.example.cn/fhir/ValueSet/lab' },
  { resourceType: 'ValueSet', id: 'vs2', status: 'active', url: 'http://county.example.cn/fhir/ValueSet/lab/chem' },
];

function qty(value: number, code: string): Record<string, unknown> {
  return { value, unit: code, system: UCUM, code };
}

function obs(id: string, subject: string | undefined, code: string, display: string, extra: Record<string, unknown>): Resource {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: LOINC, code, display }] },
    ...(subject ? { subject: { reference: `Patient/${subject}` } } : {}),
    ...extra,
  } as Resource;
}

/** Writes the seed data (one version each, lastUpdated one minute apart) and a deleted Observation. */
export async function seed(q: Queryable): Promise<void> {
  const t0 = Date.parse('2024-07-01T00:00:00Z');
  await writeVersions(
    q,
    RESOURCES.map((r, i) => {
      const lastUpdated = new Date(t0 + i * 60_000).toISOString();
      return {
        type: r.resourceType,
        id: r.id as string,
        versionId: 1,
        lastUpdated,
        method: 'POST' as const,
        resource: { ...r, meta: { ...(r.meta ?? {}), versionId: '1', lastUpdated } } as Resource,
      };
    }),
  );
  const gone = obs('o6', 'p1', '4548-4', 'Hemoglobin A1c', { valueQuantity: qty(9.9, '%') });
  const [rid] = await writeVersions(q, [{ type: 'Observation', id: 'o6', versionId: 1, lastUpdated: '2024-07-02T00:00:00Z', method: 'POST', resource: gone }]);
  await writeVersions(q, [{ rid, type: 'Observation', id: 'o6', versionId: 2, lastUpdated: '2024-07-02T01:00:00Z', method: 'DELETE' }]);
}

/** The ids of the matches of a search, in result order. */
export async function matchIds(q: Queryable, type: string | undefined, query: SearchQuery, opts: SearchOptions = OPTS): Promise<string[]> {
  const { bundle } = await searchBundle(q, type, query, opts);
  return (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id as string);
}

/** The status and OperationOutcome of a search that must fail. */
export async function searchError(q: Queryable, type: string | undefined, query: SearchQuery): Promise<GatewayError> {
  try {
    await searchBundle(q, type, query, OPTS);
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error(`search ${JSON.stringify(query)} did not fail`);
}
