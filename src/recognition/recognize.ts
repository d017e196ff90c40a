/**
 * Whether an ordered item can be answered by an existing result (检查检验结果互认): for each item,
 * the patient's recent results of that item (searched through the repository's indexes, so the
 * access is policy-checked and audited), each judged against the catalogue version in force on the
 * order date: not after the order, within the validity window, final, from an institution in the
 * item's scope that was qualified for the category on the result's date, and comparable.
 */
import type { Bundle, Coding, DiagnosticReport, ImagingStudy, Observation, Resource } from '@medplum/fhirtypes';
import type { Repository } from '../fhir/repository.js';
import type { RequestContext } from '../fhir/context.js';
import { institutionOf } from '../auth/policy.js';
import type { Queryable } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { INSTITUTION_LEVEL_EXTENSION, INSTITUTION_LEVELS, USCC_SYSTEM, FHIR_BASE } from '../fhir/systems.js';
import type { Catalogue, CatalogueItem, CatalogueVersion } from './catalogue.js';
import { QualificationHistory, listQualifications } from './store.js';

export const REASON_SYSTEM = `${FHIR_BASE}/CodeSystem/recognition-reason`;
export const ITEM_SYSTEM = `${FHIR_BASE}/CodeSystem/recognition-item`;

/** Why a result is, or is not, recognisable; for an item without any, why none is. */
export type Reason =
  | 'recognised'
  | 'not-in-catalogue'
  | 'no-result'
  | 'expired'
  | 'after-order'
  | 'not-final'
  | 'institution-unknown'
  | 'out-of-scope'
  | 'institution-not-qualified'
  | 'not-comparable';

export const REASON_TEXT: Readonly<Record<Reason, string>> = {
  recognised: 'recognisable: within its validity window, final, from a qualified institution in scope, comparable',
  'not-in-catalogue': 'the ordered item is not in the recognition catalogue in force',
  'no-result': 'no result of this item for the patient',
  expired: 'the result is older than the validity window of the item',
  'after-order': 'the result is dated after the order',
  'not-final': 'the result is not final',
  'institution-unknown': 'the result carries no producing institution',
  'out-of-scope': "the producing institution is outside the item's recognition scope",
  'institution-not-qualified': 'the producing institution was not qualified for this category on the result date',
  'not-comparable': "the result's unit, method or specimen differs from what the item requires",
};

/** When several candidates fail, the reason shown for the item is the one closest to success. */
const CLOSENESS: readonly Reason[] = ['not-comparable', 'institution-not-qualified', 'out-of-scope', 'institution-unknown', 'not-final', 'expired', 'after-order'];

export interface Candidate {
  readonly reference: string;
  readonly resourceType: string;
  readonly institution?: string;
  /** Day (YYYY-MM-DD) the result is about. */
  readonly date: string;
  /** Last day it may be recognised. */
  readonly validUntil: string;
  readonly reason: Reason;
  readonly value?: Observation['valueQuantity'];
  readonly patient?: string;
}

export interface ItemAnswer {
  /** What was ordered (a code, or a ServiceRequest reference with its code). */
  readonly order: { readonly codings: readonly Coding[]; readonly serviceRequest?: string };
  readonly item?: CatalogueItem;
  readonly recognised: boolean;
  /** 'recognised', or why nothing is. */
  readonly reason: Reason;
  /** Recognisable results first (newest first), then the others with their reasons. */
  readonly results: readonly Candidate[];
}

export interface RecognizeAnswer {
  readonly version?: CatalogueVersion;
  readonly orderDate: string;
  readonly institution?: string;
  readonly items: readonly ItemAnswer[];
}

export interface OrderedItem {
  readonly codings: readonly Coding[];
  readonly serviceRequest?: string;
}

export interface RecognizeDeps {
  readonly db: Queryable;
  readonly repository: Repository;
  readonly catalogue: Catalogue;
  /** Standard codings for a local one (ConceptMaps), so a local order code finds its item. */
  readonly standardCodings: (coding: Coding) => Coding[];
}

const FINAL = new Set(['final', 'amended', 'corrected', 'appended', 'available']);
/** How many of the newest results per resource type are judged for one item. */
const CANDIDATES = 20;

export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** The calendar day a FHIR date/dateTime names, in the time zone it was written in. */
function dayOf(v: string | undefined): string | undefined {
  return v && /^\d{4}-\d{2}-\d{2}/.test(v) ? v.slice(0, 10) : undefined;
}

function resultDate(r: Resource): string | undefined {
  switch (r.resourceType) {
    case 'Observation':
      return dayOf(r.effectiveDateTime ?? r.effectivePeriod?.start ?? r.effectiveInstant ?? r.issued);
    case 'DiagnosticReport':
      return dayOf(r.effectiveDateTime ?? r.effectivePeriod?.start ?? r.issued);
    case 'ImagingStudy':
      return dayOf(r.started);
    default:
      return undefined;
  }
}

function isFinal(r: Resource): boolean {
  if (r.resourceType === 'ImagingStudy') return r.status === 'available';
  return FINAL.has((r as Observation | DiagnosticReport).status ?? '');
}

const sameCoding = (a: Coding, b: { system: string; code: string }) => a.system === b.system && a.code === b.code;

/** Whether a result meets the item's comparability: unit, method, specimen type (of its Specimen). */
function comparable(r: Resource, item: CatalogueItem, specimenTypes: ReadonlyMap<string, readonly Coding[]>): boolean {
  const c = item.comparable;
  if (!c) return true;
  if (r.resourceType !== 'Observation') return true;
  const o = r;
  if (c.units) {
    const unit = o.valueQuantity?.code ?? o.valueQuantity?.unit;
    if (!unit || !c.units.includes(unit)) return false;
  }
  if (c.methods && !(o.method?.coding ?? []).some((m) => c.methods?.some((x) => sameCoding(m, x)))) return false;
  if (c.specimenTypes) {
    const types = specimenTypes.get(o.specimen?.reference ?? '') ?? [];
    if (!types.some((t) => c.specimenTypes?.some((x) => sameCoding(t, x)))) return false;
  }
  return true;
}

/** Specimen.type codings of the specimens these results name (one indexed lookup). */
async function specimenTypesOf(db: Queryable, resources: readonly Resource[]): Promise<Map<string, Coding[]>> {
  const ids = [...new Set(resources.flatMap((r) => (r.resourceType === 'Observation' && r.specimen?.reference?.startsWith('Specimen/') ? [r.specimen.reference.slice(9)] : [])))];
  const out = new Map<string, Coding[]>();
  if (ids.length === 0) return out;
  for (const row of await findMatches(db, 'Specimen', { _id: ids.join(',') }, ids.length)) {
    const s = JSON.parse(row.content as string) as { type?: { coding?: Coding[] } };
    out.set(`Specimen/${row.id}`, s.type?.coding ?? []);
  }
  return out;
}

function tokenList(codes: readonly { system: string; code: string }[]): string {
  return codes.map((c) => `${c.system}|${c.code}`).join(',');
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

/**
 * The searches that find results of these items for the patients, newest first, by index: one
 * per resource type for all items together (Observation for lab items, DiagnosticReport for all,
 * ImagingStudy by modality), from `since` on when given.
 */
function searchesFor(items: readonly CatalogueItem[], subjects: string, since: string | undefined, count: number): { type: string; query: Record<string, string> }[] {
  const codes = tokenList(items.flatMap((i) => i.resultCodes ?? i.codes));
  const labCodes = tokenList(items.filter((i) => i.category === 'lab').flatMap((i) => i.resultCodes ?? i.codes));
  const modalities = [...new Set(items.flatMap((i) => i.modality ?? []))];
  const page = { _count: String(count) };
  const out: { type: string; query: Record<string, string> }[] = [];
  if (labCodes) out.push({ type: 'Observation', query: { subject: subjects, code: labCodes, _sort: '-date', ...(since ? { date: `ge${since}` } : {}), ...page } });
  if (codes) out.push({ type: 'DiagnosticReport', query: { subject: subjects, code: codes, _sort: '-date', ...(since ? { date: `ge${since}` } : {}), ...page } });
  if (modalities.length) out.push({ type: 'ImagingStudy', query: { subject: subjects, modality: modalities.map((m) => `${DCM}|${m}`).join(','), _sort: '-started', ...(since ? { started: `ge${since}` } : {}), ...page } });
  return out;
}

/** Whether a result is of this item: its code (Observation, DiagnosticReport) or modality and body site (ImagingStudy). */
function answers(item: CatalogueItem, r: Resource): boolean {
  if (r.resourceType === 'ImagingStudy') {
    return (r.series ?? []).some(
      (s) => s.modality.system === DCM && (item.modality ?? []).includes(s.modality.code ?? '') && (!item.bodySite || (s.bodySite !== undefined && sameCoding(s.bodySite, item.bodySite))),
    );
  }
  if (r.resourceType === 'Observation' && item.category !== 'lab') return false;
  if (r.resourceType !== 'Observation' && r.resourceType !== 'DiagnosticReport') return false;
  return (r.code.coding ?? []).some((c) => (item.resultCodes ?? item.codes).some((x) => sameCoding(c, x)));
}

async function searchAll(deps: RecognizeDeps, items: readonly CatalogueItem[], subjects: string, since: string | undefined, count: number, ctx: RequestContext): Promise<Resource[]> {
  const out: Resource[] = [];
  for (const s of searchesFor(items, subjects, since, count)) out.push(...resourcesOf(await deps.repository.search(s.type, s.query, ctx)));
  return out;
}

function resourcesOf(bundle: Bundle): Resource[] {
  return (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include' && e.resource).map((e) => e.resource as Resource);
}

/** Organization id, name and member level (county/township/village; absent for a non-member) of institutions by USCC, in one indexed lookup. */
export async function institutionsByUscc(db: Queryable, usccs: readonly string[]): Promise<Map<string, { id: string; name?: string; level?: string }>> {
  const found = new Map<string, { id: string; name?: string; level?: string }>();
  if (usccs.length === 0) return found;
  const rows = await findMatches(db, 'Organization', { identifier: usccs.map((i) => `${USCC_SYSTEM}|${i}`).join(',') }, 1000);
  for (const row of rows) {
    const org = JSON.parse(row.content as string) as { name?: string; identifier?: { system?: string; value?: string }[]; extension?: { url: string; valueCoding?: Coding }[] };
    const uscc = org.identifier?.find((i) => i.system === USCC_SYSTEM)?.value;
    const level = org.extension?.find((e) => e.url === INSTITUTION_LEVEL_EXTENSION)?.valueCoding?.code;
    if (uscc) found.set(uscc, { id: row.id, ...(org.name ? { name: org.name } : {}), ...(level && (INSTITUTION_LEVELS as readonly string[]).includes(level) ? { level } : {}) });
  }
  return found;
}

/** Level of each member institution (USCC → county/township/village); non-members are absent. */
async function levelsOf(db: Queryable, institutions: readonly string[]): Promise<Map<string, string>> {
  const levels = new Map<string, string>();
  for (const [uscc, i] of await institutionsByUscc(db, institutions)) if (i.level) levels.set(uscc, i.level);
  return levels;
}

function inScope(item: CatalogueItem, producer: string, orderer: string | undefined, levels: Map<string, string>): boolean {
  const member = levels.has(producer);
  switch (item.scope) {
    case 'community':
      return member;
    case 'community-and-independent':
      return true;
    case 'same-level':
      return member && orderer !== undefined && levels.get(producer) === levels.get(orderer);
  }
}

/**
 * Judges each ordered item for a set of patients (the person's linked local patients) on an
 * order date, for the ordering institution.
 */
export async function recognize(
  deps: RecognizeDeps,
  input: { patients: readonly string[]; orders: readonly OrderedItem[]; orderDate: string; institution?: string },
  ctx: RequestContext,
): Promise<RecognizeAnswer> {
  const version = deps.catalogue.inForce(input.orderDate);
  const subjects = input.patients.join(',');
  const ordered = input.orders.map((order) => {
    const codings = [...order.codings, ...order.codings.flatMap((c) => deps.standardCodings(c))];
    return { order, item: version ? deps.catalogue.itemFor(version, codings) : undefined };
  });
  const items = [...new Set(ordered.flatMap((o) => (o.item ? [o.item] : [])))];
  // The results that can be recognised: within the longest validity window, all items at once.
  const since = addDays(input.orderDate, -Math.max(0, ...items.map((i) => i.validityDays)));
  const recent = items.length && input.patients.length ? await searchAll(deps, items, subjects, since, CANDIDATES * items.length, ctx) : [];
  // Items without any: their newest older results, to say why (expired).
  const bare = items.filter((i) => !recent.some((r) => answers(i, r)));
  const older = bare.length && input.patients.length ? await searchAll(deps, bare, subjects, undefined, CANDIDATES, ctx) : [];
  const seen = new Set<string>();
  const pool = [...recent, ...older].filter((r) => {
    const k = `${r.resourceType}/${r.id ?? ''}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
  const found = ordered.map(({ order, item }) => ({ order, item, resources: item ? pool.filter((r) => answers(item, r)) : [] }));

  const producers = new Set<string>(input.institution ? [input.institution] : []);
  for (const f of found) for (const r of f.resources) {
    const i = institutionOf(r);
    if (i) producers.add(i);
  }
  const levels = await levelsOf(deps.db, [...producers]);
  const specimens = await specimenTypesOf(deps.db, found.filter((f) => f.item?.comparable?.specimenTypes).flatMap((f) => f.resources));
  const history = new QualificationHistory(producers.size ? await listQualifications(deps.db) : []);

  const answersOut = found.map(({ order, item, resources }): ItemAnswer => {
    if (!item) return { order, recognised: false, reason: 'not-in-catalogue', results: [] };
    const results = resources
      .map((r): Candidate | undefined => {
        const date = resultDate(r);
        if (!date) return undefined;
        const validUntil = addDays(date, item.validityDays);
        const institution = institutionOf(r);
        let reason: Reason = 'recognised';
        if (date > input.orderDate) reason = 'after-order';
        else if (validUntil < input.orderDate) reason = 'expired';
        else if (!isFinal(r)) reason = 'not-final';
        else if (!institution) reason = 'institution-unknown';
        else if (!inScope(item, institution, input.institution, levels)) reason = 'out-of-scope';
        else if (!history.qualified(institution, item.category, date)) reason = 'institution-not-qualified';
        else if (!comparable(r, item, specimens)) reason = 'not-comparable';
        const subject = (r as Observation | DiagnosticReport | ImagingStudy).subject?.reference;
        return {
          reference: `${r.resourceType}/${r.id ?? ''}`,
          resourceType: r.resourceType,
          ...(institution ? { institution } : {}),
          date,
          validUntil,
          reason,
          ...(r.resourceType === 'Observation' && r.valueQuantity ? { value: r.valueQuantity } : {}),
          ...(subject ? { patient: subject } : {}),
        };
      })
      .filter((c): c is Candidate => c !== undefined)
      .sort((a, b) => Number(b.reason === 'recognised') - Number(a.reason === 'recognised') || b.date.localeCompare(a.date));
    const recognised = results.some((c) => c.reason === 'recognised');
    const reason: Reason = recognised
      ? 'recognised'
      : results.length === 0
        ? 'no-result'
        : (CLOSENESS.find((r) => results.some((c) => c.reason === r)) ?? 'no-result');
    return { order, item, recognised, reason, results };
  });
  return { version, orderDate: input.orderDate, ...(input.institution ? { institution: input.institution } : {}), items: answersOut };
}
