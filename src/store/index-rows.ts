/**
 * Search index extraction: at write time every search parameter of the resource's type is
 * evaluated with FHIRPath and its values are turned into typed rows of the sp_* tables.
 * Rows are gathered column-wise so that one INSERT ... SELECT FROM unnest(...) per table writes
 * the rows of a whole transaction.
 */
import { evalFhirPathTyped, getSearchParameterDetails, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource, SearchParameter } from '@medplum/fhirtypes';
import { searchParametersOf } from '../fhir/definitions.js';
import type { IndexTable } from './index.js';
import type { StatementBatch } from './db.js';

/** Column names (after rid, rtype, code) and their SQL array types, per index table. */
export const INDEX_COLUMNS: Record<IndexTable, readonly (readonly [string, string])[]> = {
  sp_token: [
    ['system', 'text'],
    ['value', 'text'],
    ['display', 'text'],
  ],
  sp_string: [
    ['value', 'text'],
    ['exact', 'text'],
  ],
  sp_date: [
    ['lo', 'timestamptz'],
    ['hi', 'timestamptz'],
  ],
  sp_number: [
    ['value', 'numeric'],
    ['lo', 'numeric'],
    ['hi', 'numeric'],
  ],
  sp_quantity: [
    ['system', 'text'],
    ['unit', 'text'],
    ['value', 'numeric'],
    ['lo', 'numeric'],
    ['hi', 'numeric'],
  ],
  sp_reference: [
    ['target_type', 'text'],
    ['target_id', 'text'],
    ['ref', 'text'],
  ],
  sp_uri: [['value', 'text']],
};

/** The index table of each search parameter type that has one. */
export const TABLE_OF_TYPE: Record<'token' | 'string' | 'date' | 'number' | 'quantity' | 'reference' | 'uri', IndexTable> = {
  token: 'sp_token',
  string: 'sp_string',
  date: 'sp_date',
  number: 'sp_number',
  quantity: 'sp_quantity',
  reference: 'sp_reference',
  uri: 'sp_uri',
};

/** Parameters whose values live on the resource table itself, not in an index table. */
const ON_RESOURCE_TABLE = new Set(['_id', '_lastUpdated']);

type Cell = string | number | null;

/** Column-wise rows of every index table for a set of resources. */
export class IndexRowSet {
  readonly columns = new Map<IndexTable, Cell[][]>();

  add(table: IndexTable, rid: number, rtype: string, code: string, values: readonly Cell[]): void {
    let cols = this.columns.get(table);
    if (!cols) {
      cols = Array.from({ length: 3 + INDEX_COLUMNS[table].length }, () => []);
      this.columns.set(table, cols);
    }
    cols[0].push(rid);
    cols[1].push(rtype);
    cols[2].push(code);
    for (let i = 0; i < values.length; i++) cols[3 + i].push(values[i]);
  }

  /** Adds the INSERT of every table's rows to a batch (one part per table that has rows). */
  addInserts(batch: StatementBatch): void {
    for (const [table, cols] of this.columns) {
      if (cols[0].length === 0) continue;
      const extra = INDEX_COLUMNS[table];
      const names = ['rid', 'rtype', 'code', ...extra.map((c) => c[0])];
      const casts = ['bigint', 'text', 'text', ...extra.map((c) => c[1])].map((t, i) => `$${i + 1}::${t}[]`);
      batch.add(`INSERT INTO ${table} (${names.join(', ')}) SELECT * FROM unnest(${casts.join(', ')})`, cols);
    }
  }
}

/** Lower case without diacritics: the form `name=` searches compare against. */
export function normalizeString(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase();
}

/**
 * The range [lo, hi] a FHIR date, dateTime or instant covers, by its precision.
 * Values without a zone are read as UTC.
 */
export function dateRange(value: string): [string, string] | undefined {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  if (mo === undefined) return [new Date(Date.UTC(year, 0, 1)).toISOString(), new Date(Date.UTC(year + 1, 0, 1) - 1).toISOString()];
  const month = Number(mo) - 1;
  if (d === undefined) return [new Date(Date.UTC(year, month, 1)).toISOString(), new Date(Date.UTC(year, month + 1, 1) - 1).toISOString()];
  const day = Number(d);
  if (h === undefined) return [new Date(Date.UTC(year, month, day)).toISOString(), new Date(Date.UTC(year, month, day + 1) - 1).toISOString()];
  const zone = tz ?? 'Z';
  const base = `${y}-${mo}-${d}T${h}:${mi}`;
  if (s === undefined) {
    const lo = Date.parse(`${base}:00${zone}`);
    return Number.isNaN(lo) ? undefined : [new Date(lo).toISOString(), new Date(lo + 60_000 - 1).toISOString()];
  }
  const lo = Date.parse(`${base}:${s}${frac ?? ''}${zone}`);
  if (Number.isNaN(lo)) return undefined;
  const span = frac && frac.length > 4 ? 0 : frac ? Math.max(0, 10 ** (4 - frac.length) - 1) : 999;
  return [new Date(lo).toISOString(), new Date(lo + span).toISOString()];
}

/** A decimal with its implicit precision range: 6.8 covers [6.75, 6.85]. */
export function numberRange(value: number | string): [string, string, string] | undefined {
  const text = String(value).trim();
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) return undefined;
  const exp = /[eE]([+-]?\d+)$/.exec(text);
  const mantissa = text.replace(/[eE].*$/, '');
  const decimals = (mantissa.split('.')[1] ?? '').length - (exp ? Number(exp[1]) : 0);
  const half = 0.5 * 10 ** -decimals;
  return [text, String(n - half), String(n + half)];
}

/** Splits a reference string into type and id when it points to a resource (relative or absolute). */
export function parseReference(ref: string): { type?: string; id?: string } {
  const clean = ref.split('#')[0].replace(/\/_history\/[^/]+$/, '');
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(clean);
  return m ? { type: m[1], id: m[2] } : {};
}

type Row = readonly Cell[];

function tokenRows(tv: TypedValue): Row[] {
  const v = tv.value as Record<string, unknown> | string | number | boolean;
  switch (tv.type) {
    case 'Coding': {
      const c = v as { system?: string; code?: string; display?: string };
      return c.code || c.display ? [[c.system ?? null, c.code ?? null, c.display ?? null]] : [];
    }
    case 'CodeableConcept': {
      const cc = v as { coding?: { system?: string; code?: string; display?: string }[]; text?: string };
      const rows: Row[] = (cc.coding ?? []).filter((c) => c.code).map((c) => [c.system ?? null, c.code ?? null, c.display ?? cc.text ?? null]);
      if (rows.length === 0 && cc.text) rows.push([null, null, cc.text]);
      return rows;
    }
    case 'Identifier': {
      const id = v as { system?: string; value?: string; type?: { text?: string; coding?: { display?: string }[] } };
      const display = id.type?.text ?? id.type?.coding?.[0]?.display ?? null;
      return id.value ? [[id.system ?? null, id.value, display]] : [];
    }
    case 'ContactPoint': {
      const cp = v as { system?: string; value?: string };
      return cp.value ? [[cp.system ?? null, cp.value, null]] : [];
    }
    case 'boolean':
      return [[null, String(v), null]];
    case 'Reference': {
      const r = v as { reference?: string; identifier?: { system?: string; value?: string } };
      return r.identifier?.value ? [[r.identifier.system ?? null, r.identifier.value, null]] : [];
    }
    default:
      return typeof v === 'string' || typeof v === 'number' ? [[null, String(v), null]] : [];
  }
}

function stringRows(tv: TypedValue): Row[] {
  const out: string[] = [];
  const v = tv.value as Record<string, unknown> | string;
  if (typeof v === 'string') out.push(v);
  else if (tv.type === 'HumanName') {
    const n = v as { text?: string; family?: string; given?: string[]; prefix?: string[]; suffix?: string[] };
    if (n.family) out.push(n.family);
    out.push(...(n.given ?? []), ...(n.prefix ?? []), ...(n.suffix ?? []));
    if (n.text) out.push(n.text);
    // Chinese names are written family-then-given without a space: index the whole name too.
    if (n.family && n.given?.length && !n.text) out.push(`${n.family}${n.given.join('')}`);
  } else if (tv.type === 'Address') {
    const a = v as Record<string, string | string[] | undefined>;
    for (const k of ['line', 'city', 'district', 'state', 'postalCode', 'country', 'text']) {
      const x = a[k];
      if (Array.isArray(x)) out.push(...x);
      else if (x) out.push(x);
    }
  } else if (v && typeof v === 'object' && typeof (v as { text?: unknown }).text === 'string') {
    out.push((v as { text: string }).text);
  }
  return [...new Set(out.filter((s) => s.trim() !== ''))].map((s) => [normalizeString(s), s]);
}

function dateRows(tv: TypedValue): Row[] {
  const v = tv.value as Record<string, unknown> | string;
  if (typeof v === 'string') {
    const r = dateRange(v);
    return r ? [r] : [];
  }
  if (tv.type === 'Period') {
    const p = v as { start?: string; end?: string };
    const lo = p.start ? dateRange(p.start)?.[0] : '-infinity';
    const hi = p.end ? dateRange(p.end)?.[1] : 'infinity';
    return lo && hi && (p.start || p.end) ? [[lo, hi]] : [];
  }
  if (tv.type === 'Timing') {
    return ((v as { event?: string[] }).event ?? []).map((e) => dateRange(e)).filter((r): r is [string, string] => !!r);
  }
  return [];
}

function numberRows(tv: TypedValue): Row[] {
  const r = typeof tv.value === 'number' || typeof tv.value === 'string' ? numberRange(tv.value) : undefined;
  return r ? [r] : [];
}

function quantityRows(tv: TypedValue): Row[] {
  const q = tv.value as { value?: number; system?: string; code?: string; unit?: string; currency?: string };
  if (q === null || typeof q !== 'object' || q.value === undefined) return [];
  const r = numberRange(q.value);
  if (!r) return [];
  const system = q.currency ? 'urn:iso:std:iso:4217' : (q.system ?? null);
  const unit = q.currency ?? q.code ?? q.unit ?? null;
  const rows: Row[] = [[system, unit, ...r]];
  // Also findable by the human-readable unit when it differs from the coded one.
  if (q.unit && q.code && q.unit !== q.code) rows.push([null, q.unit, ...r]);
  return rows;
}

function referenceRows(tv: TypedValue): Row[] {
  const v = tv.value as { reference?: string } | string;
  const ref = typeof v === 'string' ? v : v?.reference;
  if (!ref) return [];
  const { type, id } = parseReference(ref);
  return [[type ?? null, id ?? null, ref]];
}

function uriRows(tv: TypedValue): Row[] {
  return typeof tv.value === 'string' ? [[tv.value]] : [];
}

const ROW_MAKERS: Record<IndexTable, (tv: TypedValue) => Row[]> = {
  sp_token: tokenRows,
  sp_string: stringRows,
  sp_date: dateRows,
  sp_number: numberRows,
  sp_quantity: quantityRows,
  sp_reference: referenceRows,
  sp_uri: uriRows,
};

interface IndexedParam {
  readonly code: string;
  readonly table: IndexTable;
  readonly param: SearchParameter;
}

const indexedParamsCache = new Map<string, IndexedParam[]>();

/** The parameters of a type that have index rows (everything but composite, special, _id, _lastUpdated). */
export function indexedParams(type: string): IndexedParam[] {
  let list = indexedParamsCache.get(type);
  if (!list) {
    list = [];
    for (const [code, param] of Object.entries(searchParametersOf(type))) {
      const table = (TABLE_OF_TYPE as Record<string, IndexTable | undefined>)[param.type ?? ''];
      if (!table || ON_RESOURCE_TABLE.has(code) || !param.expression) continue;
      list.push({ code, table, param });
    }
    indexedParamsCache.set(type, list);
  }
  return list;
}

/** Evaluates a search parameter's expression against a resource. */
export function evalSearchParam(resource: Resource, param: SearchParameter): TypedValue[] {
  const details = getSearchParameterDetails(resource.resourceType, param);
  return evalFhirPathTyped(details.parsedExpression, [toTypedValue(resource)]);
}

/** Adds the index rows of one resource version to the set. */
export function extractIndexRows(set: IndexRowSet, rid: number, resource: Resource): void {
  const type = resource.resourceType;
  for (const { code, table, param } of indexedParams(type)) {
    let values: TypedValue[];
    try {
      values = evalSearchParam(resource, param);
    } catch {
      continue; // an expression that cannot apply to this instance yields no index rows
    }
    const seen = new Set<string>();
    for (const tv of values) {
      for (const row of ROW_MAKERS[table](tv)) {
        const key = JSON.stringify(row);
        if (seen.has(key)) continue;
        seen.add(key);
        set.add(table, rid, type, code, row);
      }
      // `subject:identifier=system|value` searches the identifier of a logical reference.
      if (table === 'sp_reference') {
        const ident = (tv.value as { identifier?: { system?: string; value?: string } } | undefined)?.identifier;
        const key = `identifier|${ident?.system ?? ''}|${ident?.value ?? ''}`;
        if (ident?.value && !seen.has(key)) {
          seen.add(key);
          set.add('sp_token', rid, type, `${code}:identifier`, [ident.system ?? null, ident.value, null]);
        }
      }
    }
  }
}
