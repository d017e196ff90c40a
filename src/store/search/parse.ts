/**
 * Parsing of a whole search query into a ParsedSearch: filter parameters, result parameters
 * (_count, _sort, _include, _revinclude, _summary, _total, _elements) and the paging cursor.
 * Validates everything; nothing here touches the database.
 */
import { GatewayError } from '../../errors.js';
import { decodeCursor } from './cursor.js';
import { parseFilter } from './filters.js';
import { assertType, paramDef } from './params.js';
import type { Filter, IncludeSpec, ParsedSearch, SearchOptions, SearchQuery, SortKey, SummaryMode } from './types.js';
import { invalid, unsupported } from './values.js';

/** Parameters about the HTTP exchange, not the search; the REST layer handles them. */
const IGNORED = new Set(['_format', '_pretty']);
const UNSUPPORTED = new Set(['_text', '_content', '_list', '_filter', '_query', '_contained', '_containedType']);

function valuesOf(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function single(name: string, values: string[]): string {
  if (values.length > 1) throw invalid(name, 'may appear only once');
  return values[0];
}

function parseCount(raw: string, opts: SearchOptions): number {
  if (!/^\d{1,9}$/.test(raw)) throw invalid('_count', `'${raw}' is not a non-negative integer`);
  return Math.min(Number(raw), opts.maxCount);
}

function parseSort(type: string | undefined, raw: string): SortKey[] {
  const keys: SortKey[] = [];
  for (const part of raw.split(',')) {
    const descending = part.startsWith('-');
    const code = descending ? part.slice(1) : part;
    if (code === '') throw invalid('_sort', 'empty sort key');
    if (keys.some((k) => k.code === code)) throw invalid('_sort', `'${code}' appears twice`);
    if (code === '_id') keys.push({ code, descending, type: 'id' });
    else if (code === '_lastUpdated') keys.push({ code, descending, type: 'lastUpdated' });
    else {
      if (code.includes(':') || code.includes('.')) throw unsupported('_sort', `cannot sort by '${code}'`);
      const def = paramDef(type, code, '_sort');
      keys.push({ code, descending, type: def.type });
    }
  }
  return keys;
}

function parseInclude(type: string | undefined, name: string, raw: string): IncludeSpec {
  const modifier = name.includes(':') ? name.slice(name.indexOf(':') + 1) : undefined;
  if (modifier !== undefined && modifier !== 'iterate' && modifier !== 'recurse') throw unsupported(name, `modifier ':${modifier}' is not supported`);
  const reverse = name.startsWith('_revinclude');
  const iterate = modifier !== undefined;
  if (raw === '*') return { reverse, iterate, sourceType: reverse ? '*' : (type ?? '*'), code: '*' };
  const [sourceType, code, targetType, ...rest] = raw.split(':');
  if (!sourceType || !code || rest.length > 0) throw invalid(name, `'${raw}' is not of the form Type:parameter[:TargetType]`);
  assertType(name, sourceType);
  if (!reverse && !iterate && type !== undefined && sourceType !== type) {
    throw invalid(name, `'${raw}' does not start with the searched type ${type} (use ${name}:iterate)`);
  }
  if (targetType !== undefined) assertType(name, targetType);
  if (code !== '*') {
    const def = paramDef(sourceType, code, name);
    if (def.type !== 'reference') throw invalid(name, `'${code}' is not a reference parameter of ${sourceType}`);
    if (targetType && def.targets.length > 0 && !def.targets.includes(targetType)) throw invalid(name, `${targetType} is not a target of ${sourceType}.${code}`);
  }
  return { reverse, iterate, sourceType, code, ...(targetType ? { targetType } : {}) };
}

function parseElements(raw: string): string[] {
  const out: string[] = [];
  for (const e of raw.split(',')) {
    const el = e.trim().replace(/^[A-Z][A-Za-z]+\./, '');
    if (!/^[a-z][A-Za-z0-9]*(\[x\])?$/.test(el)) throw invalid('_elements', `'${e}' is not an element name`);
    out.push(el);
  }
  return out;
}

/**
 * Validates and parses a search. `type` undefined = system-level search. Throws GatewayError
 * (400) for unknown parameters (unless opts.lenient) and bad values.
 */
export function parseSearch(type: string | undefined, query: SearchQuery, opts: SearchOptions): ParsedSearch {
  if (type !== undefined) assertType('type', type);
  const filters: Filter[] = [];
  const includes: IncludeSpec[] = [];
  const ignored: string[] = [];
  const canonical: [string, string][] = [];
  let sort: SortKey[] = [];
  let count = opts.defaultCount;
  let cursorRaw: string | undefined;
  let total: ParsedSearch['total'];
  let summary: SummaryMode | undefined;
  let elements: string[] | undefined;
  let types: string[] | undefined;

  for (const [name, rawValue] of Object.entries(query)) {
    const values = valuesOf(rawValue);
    if (values.length === 0) continue;
    if (name === '_cursor') {
      cursorRaw = single(name, values);
      continue;
    }
    if (IGNORED.has(name)) continue;
    try {
      switch (true) {
        case name === '_count':
          count = parseCount(single(name, values), opts);
          break;
        case name === '_sort':
          sort = parseSort(type, single(name, values));
          break;
        case name === '_total': {
          const v = single(name, values);
          if (v !== 'none' && v !== 'estimate' && v !== 'accurate') throw invalid(name, `'${v}' is not none, estimate or accurate`);
          total = v;
          break;
        }
        case name === '_summary': {
          const v = single(name, values);
          if (!['true', 'false', 'text', 'data', 'count'].includes(v)) throw invalid(name, `'${v}' is not true, false, text, data or count`);
          summary = v as SummaryMode;
          break;
        }
        case name === '_elements':
          elements = values.flatMap((v) => parseElements(v));
          break;
        case name === '_include' || name.startsWith('_include:') || name === '_revinclude' || name.startsWith('_revinclude:'):
          for (const v of values) includes.push(parseInclude(type, name, v));
          break;
        case name === '_type': {
          if (type !== undefined) throw unsupported(name, '_type applies only to a search across all types');
          const list = values.flatMap((v) => v.split(',')).filter((v) => v !== '');
          for (const t of list) assertType(name, t);
          types = types ? types.filter((t) => list.includes(t)) : list;
          break;
        }
        case UNSUPPORTED.has(name) || UNSUPPORTED.has(name.split(':')[0]):
          throw unsupported(name, 'this parameter is not supported by this server');
        default:
          for (const v of values) {
            const f = parseFilter(type, name, v, { baseUrl: opts.baseUrl, hasDepth: 0, inChain: false });
            if (f) filters.push(f);
          }
      }
    } catch (e) {
      if (opts.lenient && e instanceof GatewayError && e.code === 'GW_ERR_UNSUPPORTED_SEARCH') {
        ignored.push(name);
        continue;
      }
      throw e;
    }
    for (const v of values) canonical.push([name, v]);
  }
  const cursor = cursorRaw === undefined ? undefined : decodeCursor(cursorRaw, sort.length);
  return { type, types, filters, sort, count, cursor, includes, total, summary, elements, ignored, canonical };
}

/** A URL query string (`a=1&b=2&a=3`) as a SearchQuery, repeated names kept in order. */
export function queryFromString(query: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(query)) (out[k] ??= []).push(v);
  return out;
}
