/**
 * The SQL statements of a search: the page query (filters, sort keys, keyset position, limit)
 * and the count query. Sorting is by the sort keys then rid, so that every position is unique
 * and a cursor names exactly where the next page starts.
 */
import { TABLE_OF } from './params.js';
import type { Cursor, ParsedSearch, SortKey } from './types.js';
import { filterSql, SqlParams } from './where.js';

export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

const R = 'r';

function baseWhere(p: SqlParams, ps: ParsedSearch): string {
  const conds: string[] = [];
  if (ps.type !== undefined) conds.push(`${R}.type = ${p.bind(ps.type)}`);
  else if (ps.types !== undefined) conds.push(`${R}.type = ANY(${p.bind(ps.types, 'text[]')})`);
  conds.push(`NOT ${R}.deleted`);
  for (const f of ps.filters) conds.push(filterSql(p, f, { alias: R, type: ps.type }));
  return conds.join('\n  AND ');
}

const SORT_COLUMN: Record<string, [asc: string, desc: string, cast: string]> = {
  string: ['value', 'value', 'text'],
  token: ['value', 'value', 'text'],
  uri: ['value', 'value', 'text'],
  reference: ['ref', 'ref', 'text'],
  date: ['lo', 'hi', 'timestamptz'],
  number: ['value', 'value', 'numeric'],
  quantity: ['value', 'value', 'numeric'],
};

/** The value a resource sorts by: min ascending, max descending of a multi-valued parameter. */
function sortExpr(p: SqlParams, key: SortKey, type: string | undefined): { expr: string; cast: string } {
  if (key.type === 'id') return { expr: `${R}.id`, cast: 'text' };
  if (key.type === 'lastUpdated') return { expr: `${R}.last_updated`, cast: 'timestamptz' };
  const [asc, desc, cast] = SORT_COLUMN[key.type];
  const a = p.alias('k');
  const rtype = type === undefined ? `${R}.type` : p.bind(type);
  const agg = key.descending ? `max(${a}.${desc})` : `min(${a}.${asc})`;
  return {
    expr: `(SELECT ${agg} FROM ${TABLE_OF[key.type]} ${a} WHERE ${a}.rid = ${R}.rid AND ${a}.rtype = ${rtype} AND ${a}.code = ${p.bind(key.code)})`,
    cast,
  };
}

/** Strictly after the cursor in (k0, k1, ..., rid) order, with missing values sorting last. */
function keysetSql(p: SqlParams, keys: readonly SortKey[], casts: string[], cursor: Cursor): string {
  const clauses: string[] = [];
  const equal: string[] = [];
  keys.forEach((key, i) => {
    const col = `m.k${i}`;
    const c = cursor.keys[i];
    if (c !== null) {
      const v = p.bind(c, casts[i]);
      clauses.push([...equal, `(${col} ${key.descending ? '<' : '>'} ${v} OR ${col} IS NULL)`].join(' AND '));
      equal.push(`${col} = ${v}`);
    } else {
      equal.push(`${col} IS NULL`);
    }
  });
  clauses.push([...equal, `m.rid > ${p.bind(cursor.rid, 'bigint')}`].join(' AND '));
  return clauses.map((c) => `(${c})`).join('\n   OR ');
}

/**
 * The page query: rids (and sort key values as text, k0..kn) of at most `limit` matches after
 * the cursor, in order.
 */
export function pageQuery(ps: ParsedSearch, limit: number): SqlStatement {
  const p = new SqlParams();
  const where = baseWhere(p, ps);
  if (ps.sort.length === 0) {
    const after = ps.cursor ? `\n  AND ${R}.rid > ${p.bind(ps.cursor.rid, 'bigint')}` : '';
    const sql = `SELECT ${R}.rid FROM resource ${R}\nWHERE ${where}${after}\nORDER BY ${R}.rid\nLIMIT ${p.bind(limit, 'bigint')}`;
    return { sql, params: p.values };
  }
  const exprs = ps.sort.map((k) => sortExpr(p, k, ps.type));
  const casts = exprs.map((e) => e.cast);
  const cols = exprs.map((e, i) => `${e.expr} AS k${i}`).join(', ');
  const keyset = ps.cursor ? `\nWHERE ${keysetSql(p, ps.sort, casts, ps.cursor)}` : '';
  const order = ps.sort.map((k, i) => `m.k${i} ${k.descending ? 'DESC' : 'ASC'} NULLS LAST`).join(', ');
  const sql =
    `SELECT m.rid, ${ps.sort.map((_, i) => `m.k${i}::text AS k${i}`).join(', ')}\n` +
    `FROM (SELECT ${R}.rid, ${cols} FROM resource ${R}\nWHERE ${where}) m${keyset}\n` +
    `ORDER BY ${order}, m.rid\nLIMIT ${p.bind(limit, 'bigint')}`;
  return { sql, params: p.values };
}

/** The number of all matches (ignores the cursor). */
export function countQuery(ps: ParsedSearch): SqlStatement {
  const p = new SqlParams();
  const where = baseWhere(p, ps);
  return { sql: `SELECT count(*)::int AS n FROM resource ${R}\nWHERE ${where}`, params: p.values };
}
