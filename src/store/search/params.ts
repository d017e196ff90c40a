/**
 * Search parameter definitions as search sees them: which parameters a type has, their type,
 * where their values live, and the targets of reference parameters.
 */
import { isKnownResourceType, searchParametersOf } from '../../fhir/definitions.js';
import { indexedParams, TABLE_OF_TYPE } from '../index-rows.js';
import type { IndexTable } from '../migrations.js';
import type { ParamColumn, ParamType } from './types.js';
import { unsupported } from './values.js';

export interface ParamDef {
  readonly code: string;
  readonly type: ParamType;
  readonly column: ParamColumn;
  readonly table?: IndexTable;
  /** Target types of a reference parameter. */
  readonly targets: readonly string[];
}

/** The parameters a system-level search (no type) may use. */
const SYSTEM_PARAMS: Record<string, ParamDef> = {
  _id: { code: '_id', type: 'token', column: 'id', targets: [] },
  _lastUpdated: { code: '_lastUpdated', type: 'date', column: 'lastUpdated', targets: [] },
  _tag: { code: '_tag', type: 'token', column: 'index', table: 'sp_token', targets: [] },
  _security: { code: '_security', type: 'token', column: 'index', table: 'sp_token', targets: [] },
  _profile: { code: '_profile', type: 'uri', column: 'index', table: 'sp_uri', targets: [] },
  _source: { code: '_source', type: 'uri', column: 'index', table: 'sp_uri', targets: [] },
};

const TABLE_TYPE: Record<IndexTable, ParamType> = {
  sp_token: 'token',
  sp_string: 'string',
  sp_date: 'date',
  sp_number: 'number',
  sp_quantity: 'quantity',
  sp_reference: 'reference',
  sp_uri: 'uri',
};

/** Index table of each parameter type (owned by the index extraction). */
export const TABLE_OF: Record<ParamType, IndexTable> = TABLE_OF_TYPE;

const cache = new Map<string, Map<string, ParamDef>>();

function defsOf(type: string): Map<string, ParamDef> {
  let defs = cache.get(type);
  if (!defs) {
    defs = new Map();
    defs.set('_id', SYSTEM_PARAMS._id);
    defs.set('_lastUpdated', SYSTEM_PARAMS._lastUpdated);
    for (const p of indexedParams(type)) {
      defs.set(p.code, { code: p.code, type: TABLE_TYPE[p.table], column: 'index', table: p.table, targets: p.param.target ?? [] });
    }
    cache.set(type, defs);
  }
  return defs;
}

/** The definition of a parameter, or a 400 naming it. `name` is the parameter as written. */
export function paramDef(type: string | undefined, code: string, name: string): ParamDef {
  if (type === undefined) {
    const def = SYSTEM_PARAMS[code];
    if (!def) throw unsupported(name, 'a search across all resource types allows only _id, _lastUpdated, _tag, _profile, _security, _source and _type');
    return def;
  }
  const def = defsOf(type).get(code);
  if (def) return def;
  const sp = searchParametersOf(type)[code];
  if (sp?.type === 'composite') throw unsupported(name, 'composite search parameters are not supported');
  if (sp) throw unsupported(name, `search parameter of type '${sp.type}' is not supported`);
  throw unsupported(name, `unknown search parameter for ${type}`);
}

/** The reference parameters of a type. */
export function referenceParams(type: string): ParamDef[] {
  return [...defsOf(type).values()].filter((d) => d.type === 'reference');
}

export function hasParam(type: string, code: string): boolean {
  return defsOf(type).has(code);
}

export function assertType(name: string, type: string): void {
  if (!isKnownResourceType(type)) throw unsupported(name, `unknown resource type '${type}'`);
}
