/**
 * Translation of parsed filters into SQL conditions over the index tables. Every value is a bind
 * parameter; only table names, column names and aliases chosen here are written into the SQL.
 * A filter on an index table is an EXISTS over that table's rows of the resource, so that the
 * planner can drive the search from the (rtype, code, value) indexes.
 */
import type { IndexTable } from '../migrations.js';
import { TABLE_OF } from './params.js';
import type { Filter, RangeValue, ReferenceValue, TokenValue } from './types.js';

/** Bind parameters of one statement, and unique aliases for its subqueries. */
export class SqlParams {
  readonly values: unknown[] = [];
  private aliases = 0;

  bind(v: unknown, cast?: string): string {
    this.values.push(v);
    return `$${this.values.length}${cast ? `::${cast}` : ''}`;
  }

  alias(prefix: string): string {
    return `${prefix}${++this.aliases}`;
  }
}

/** The resource row a condition applies to: its alias and its type (undefined = any type). */
export interface RowContext {
  readonly alias: string;
  readonly type: string | undefined;
}

/** LIKE pattern of a literal (default escape character is the backslash). */
export function likeLiteral(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function or(conds: string[]): string {
  return conds.length === 1 ? conds[0] : `(${conds.map((c) => `(${c})`).join(' OR ')})`;
}

function rtypeOf(p: SqlParams, r: RowContext): string {
  return r.type === undefined ? `${r.alias}.type` : p.bind(r.type);
}

/** EXISTS over the index rows of parameter `code` of the resource. */
function existsIn(p: SqlParams, r: RowContext, table: IndexTable, code: string, cond: (a: string) => string): string {
  const a = p.alias('x');
  const rtype = rtypeOf(p, r);
  const c = p.bind(code);
  return `EXISTS (SELECT 1 FROM ${table} ${a} WHERE ${a}.rid = ${r.alias}.rid AND ${a}.rtype = ${rtype} AND ${a}.code = ${c} AND ${cond(a)})`;
}

/**
 * Range comparison per the prefix table of the FHIR search specification: [lo, hi] is the
 * target's range (stored), [slo, shi] the search value's implicit range (widened for `ap`).
 */
export function rangeCondition(p: SqlParams, v: RangeValue, lo: string, hi: string, cast: string, exact?: string): string {
  if (exact !== undefined) {
    // Numbers and quantities: gt/lt/ge/le compare with the value exactly ("gt100: greater than
    // exactly 100"); eq, ne, sa, eb and ap use the implicit ranges.
    const op = { gt: '>', lt: '<', ge: '>=', le: '<=' }[v.prefix as string];
    if (op) return `${exact} ${op} ${p.bind(v.value, cast)}`;
  }
  // Bind only the bounds the prefix uses: an unused parameter has no type PostgreSQL can infer.
  let sloRef: string | undefined;
  let shiRef: string | undefined;
  const bounds = {
    get slo() {
      return (sloRef ??= p.bind(v.lo, cast));
    },
    get shi() {
      return (shiRef ??= p.bind(v.hi, cast));
    },
  };
  return rangeSql(v.prefix, lo, hi, bounds);
}

function rangeSql(prefix: RangeValue['prefix'], lo: string, hi: string, b: { readonly slo: string; readonly shi: string }): string {
  const within = () => `${lo} >= ${b.slo} AND ${hi} <= ${b.shi}`;
  switch (prefix) {
    case 'eq':
      return within();
    case 'ne':
      return `NOT (${within()})`;
    case 'gt':
      return `${hi} > ${b.shi}`;
    case 'lt':
      return `${lo} < ${b.slo}`;
    case 'ge':
      return `(${hi} > ${b.shi} OR (${within()}))`;
    case 'le':
      return `(${lo} < ${b.slo} OR (${within()}))`;
    case 'sa':
      return `${lo} > ${b.shi}`;
    case 'eb':
      return `${hi} < ${b.slo}`;
    case 'ap':
      return `${lo} <= ${b.shi} AND ${hi} >= ${b.slo}`;
  }
}

function tokenCondition(p: SqlParams, a: string, v: TokenValue): string {
  const conds: string[] = [];
  if (v.system === null) conds.push(`${a}.system IS NULL`);
  else if (v.system !== undefined) conds.push(`${a}.system = ${p.bind(v.system)}`);
  if (v.code !== undefined) conds.push(`${a}.value = ${p.bind(v.code)}`);
  return conds.join(' AND ');
}

function referenceCondition(p: SqlParams, a: string, v: ReferenceValue): string {
  if (v.url !== undefined) return `${a}.ref = ${p.bind(v.url)}`;
  const conds = [`${a}.target_id = ${p.bind(v.id)}`];
  if (v.type) conds.push(`${a}.target_type = ${p.bind(v.type)}`);
  return conds.join(' AND ');
}

function quantityCondition(p: SqlParams, a: string, v: RangeValue): string {
  const conds = [rangeCondition(p, v, `${a}.lo`, `${a}.hi`, 'numeric', `${a}.value`)];
  if (v.system !== undefined) conds.push(`${a}.system = ${p.bind(v.system)}`);
  if (v.unit !== undefined) conds.push(`${a}.unit = ${p.bind(v.unit)}`);
  return conds.join(' AND ');
}

/** The SQL condition of one filter on the resource row `r`. */
export function filterSql(p: SqlParams, f: Filter, r: RowContext): string {
  switch (f.kind) {
    case 'missing': {
      if (f.code === '_id' || f.code === '_lastUpdated') return f.missing ? 'FALSE' : 'TRUE';
      const a = p.alias('x');
      const exists = `EXISTS (SELECT 1 FROM ${TABLE_OF[f.type]} ${a} WHERE ${a}.rid = ${r.alias}.rid AND ${a}.code = ${p.bind(f.code)})`;
      return f.missing ? `NOT ${exists}` : exists;
    }
    case 'chain': {
      const c = p.alias('c');
      const t = p.alias('t');
      const target = p.bind(f.targetType);
      const inner = filterSql(p, f.inner, { alias: t, type: f.targetType });
      return (
        `EXISTS (SELECT 1 FROM sp_reference ${c} WHERE ${c}.rid = ${r.alias}.rid AND ${c}.rtype = ${rtypeOf(p, r)} ` +
        `AND ${c}.code = ${p.bind(f.code)} AND ${c}.target_type = ${target} AND EXISTS (SELECT 1 FROM resource ${t} ` +
        `WHERE ${t}.type = ${target} AND ${t}.id = ${c}.target_id AND NOT ${t}.deleted AND ${inner}))`
      );
    }
    case 'has': {
      const h = p.alias('h');
      const s = p.alias('s');
      const inner = filterSql(p, f.inner, { alias: s, type: f.sourceType });
      return (
        `EXISTS (SELECT 1 FROM sp_reference ${h} JOIN resource ${s} ON ${s}.rid = ${h}.rid ` +
        `WHERE ${h}.target_type = ${r.type === undefined ? `${r.alias}.type` : p.bind(r.type)} AND ${h}.target_id = ${r.alias}.id ` +
        `AND ${h}.rtype = ${p.bind(f.sourceType)} AND ${h}.code = ${p.bind(f.refCode)} AND NOT ${s}.deleted AND ${inner})`
      );
    }
    case 'token': {
      if (f.column === 'id') {
        const ids = p.bind(f.values.map((v) => (v as TokenValue).code), 'text[]');
        return f.modifier === 'not' ? `NOT (${r.alias}.id = ANY(${ids}))` : `${r.alias}.id = ANY(${ids})`;
      }
      if (f.modifier === 'text') {
        return existsIn(p, r, 'sp_token', f.code, (a) => or(f.values.map((v) => `lower(${a}.display) LIKE ${p.bind(`${likeLiteral(v as string)}%`)}`)));
      }
      const cond = existsIn(p, r, 'sp_token', f.code, (a) => or(f.values.map((v) => tokenCondition(p, a, v as TokenValue))));
      return f.modifier === 'not' ? `NOT ${cond}` : cond;
    }
    case 'string':
      return existsIn(p, r, 'sp_string', f.code, (a) =>
        or(
          f.values.map((v) =>
            f.modifier === 'exact'
              ? `${a}.exact = ${p.bind(v)}`
              : `${a}.value LIKE ${p.bind(f.modifier === 'contains' ? `%${likeLiteral(v)}%` : `${likeLiteral(v)}%`)}`,
          ),
        ),
      );
    case 'date': {
      if (f.column === 'lastUpdated') {
        const col = `${r.alias}.last_updated`;
        return or(f.values.map((v) => rangeCondition(p, v, col, col, 'timestamptz')));
      }
      return existsIn(p, r, 'sp_date', f.code, (a) =>
        or(f.values.map((v) => rangeCondition(p, v, `${a}.lo`, `${a}.hi`, 'timestamptz'))),
      );
    }
    case 'number':
      return existsIn(p, r, 'sp_number', f.code, (a) =>
        or(f.values.map((v) => rangeCondition(p, v, `${a}.lo`, `${a}.hi`, 'numeric', `${a}.value`))),
      );
    case 'quantity':
      return existsIn(p, r, 'sp_quantity', f.code, (a) => or(f.values.map((v) => quantityCondition(p, a, v))));
    case 'reference':
      if (f.modifier === 'identifier') {
        return existsIn(p, r, 'sp_token', `${f.code}:identifier`, (a) => or(f.values.map((v) => tokenCondition(p, a, v as TokenValue))));
      }
      return existsIn(p, r, 'sp_reference', f.code, (a) => or(f.values.map((v) => referenceCondition(p, a, v as ReferenceValue))));
    case 'uri':
      return existsIn(p, r, 'sp_uri', f.code, (a) =>
        or(
          f.values.map((v) =>
            f.modifier === 'above'
              ? `starts_with(${p.bind(v)}, ${a}.value)`
              : f.modifier === 'below'
                ? `starts_with(${a}.value, ${p.bind(v)})`
                : `${a}.value = ${p.bind(v)}`,
          ),
        ),
      );
  }
}
