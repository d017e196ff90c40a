/**
 * The searchset Bundle: entries with fullUrl and search.mode, self and next links, total, and
 * the subsetting of `_summary` and `_elements` (marked with the SUBSETTED tag).
 */
import { tryGetDataType } from '@medplum/core';
import type { Bundle, BundleEntry, BundleLink, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { StoredRow } from '../resources.js';
import type { ParsedSearch } from './types.js';

export const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' };

const ALWAYS_KEPT = new Set(['resourceType', 'id', 'meta']);

function isKept(type: string, key: string, keep: Set<string>): boolean {
  if (ALWAYS_KEPT.has(key) || keep.has(key)) return true;
  // Choice elements: `value` keeps valueQuantity, valueString, ...
  for (const k of keep) {
    if (key.length > k.length && key.startsWith(k) && /^[A-Z]/.test(key.slice(k.length))) {
      if (tryGetDataType(type)?.elements[`${k}[x]`]) return true;
    }
  }
  return false;
}

function markSubsetted(r: Record<string, unknown>): void {
  const meta = { ...((r.meta as Record<string, unknown>) ?? {}) };
  const tags = [...((meta.tag as unknown[]) ?? [])];
  if (!tags.some((t) => (t as { code?: string }).code === SUBSETTED.code)) tags.push(SUBSETTED);
  r.meta = { ...meta, tag: tags };
}

/** Applies `_summary` (true, text, data) and `_elements` to a resource; others pass unchanged. */
export function subset(resource: Resource, ps: Pick<ParsedSearch, 'summary' | 'elements'>): Resource {
  const { summary, elements } = ps;
  const type = resource.resourceType;
  const dt = tryGetDataType(type);
  let keep: Set<string> | undefined;
  if (summary === 'true') keep = new Set(dt?.summaryProperties ?? []);
  else if (summary === 'text') keep = new Set(['text', ...(dt?.mandatoryProperties ?? [])]);
  else if (elements && elements.length > 0 && summary !== 'data') keep = new Set([...elements, ...(dt?.mandatoryProperties ?? [])]);
  const src = resource as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    if (summary === 'data' && k === 'text') continue;
    if (keep && !isKept(type, k, keep)) continue;
    out[k] = v;
  }
  if (keep || summary === 'data') markSubsetted(out);
  return out as unknown as Resource;
}

function queryString(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([k, v]) => `${encodeURIComponent(k).replace(/%3A/g, ':')}=${encodeURIComponent(v)}`).join('&');
}

export interface BundleInput {
  readonly ps: ParsedSearch;
  readonly baseUrl: string;
  readonly matches: readonly StoredRow[];
  readonly included: readonly StoredRow[];
  readonly total?: number;
  readonly nextCursor?: string;
  /** The cursor this page was asked with, kept in the self link. */
  readonly selfCursor?: string;
  readonly outcome?: OperationOutcome;
}

export function buildBundle(input: BundleInput): Bundle {
  const { ps, matches, included } = input;
  const base = input.baseUrl.replace(/\/+$/, '');
  const path = ps.type ? `${base}/${ps.type}` : base;
  const selfPairs: (readonly [string, string])[] = input.selfCursor ? [...ps.canonical, ['_cursor', input.selfCursor]] : [...ps.canonical];
  const link: BundleLink[] = [{ relation: 'self', url: `${path}?${queryString(selfPairs)}`.replace(/\?$/, '') }];
  if (input.nextCursor) link.push({ relation: 'next', url: `${path}?${queryString([...ps.canonical, ['_cursor', input.nextCursor]])}` });
  const entry: BundleEntry[] = [];
  const toEntry = (row: StoredRow, mode: 'match' | 'include', subsetting: boolean): BundleEntry => {
    const resource = JSON.parse(row.content ?? '{}') as Resource;
    return {
      fullUrl: `${base}/${row.type}/${row.id}`,
      resource: subsetting ? subset(resource, ps) : resource,
      search: { mode },
    };
  };
  const subsetting = ps.summary !== undefined && ps.summary !== 'false' ? true : (ps.elements?.length ?? 0) > 0;
  for (const m of matches) entry.push(toEntry(m, 'match', subsetting));
  for (const i of included) entry.push(toEntry(i, 'include', ps.summary !== undefined && ps.summary !== 'false'));
  if (input.outcome) entry.push({ resource: input.outcome, search: { mode: 'outcome' } });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    ...(input.total !== undefined ? { total: input.total } : {}),
    link,
    ...(entry.length > 0 ? { entry } : {}),
  };
}
