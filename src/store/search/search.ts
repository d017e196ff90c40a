/**
 * Running a search: the page query, the total when asked (or when it comes for free), includes,
 * and the searchset Bundle. Also the plain matching used by conditional interactions.
 */
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import type { Queryable } from '../db.js';
import { readByRids, type StoredRow } from '../resources.js';
import { buildBundle } from './bundle.js';
import { encodeCursor } from './cursor.js';
import { findIncludes } from './includes.js';
import { parseSearch } from './parse.js';
import { countQuery, pageQuery, type SqlStatement } from './query.js';
import type { ParsedSearch, SearchOptions, SearchQuery, TokenValue } from './types.js';

export interface SearchResult {
  readonly bundle: Bundle;
  readonly matches: StoredRow[];
  readonly included: StoredRow[];
}

interface PageRow {
  rid: number;
  [key: `k${number}`]: string | null;
}

async function count(q: Queryable, ps: ParsedSearch): Promise<number> {
  const { sql, params } = countQuery(ps);
  const { rows } = await q.query<{ n: number }>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

function warnings(ps: ParsedSearch, truncated: boolean): OperationOutcome | undefined {
  const issue: OperationOutcome['issue'] = ps.ignored.map((name) => ({
    severity: 'warning' as const,
    code: 'not-supported' as const,
    diagnostics: `Unknown or unsupported search parameter '${name}' was ignored`,
    expression: [name],
  }));
  if (truncated) {
    issue.push({ severity: 'warning', code: 'too-costly', diagnostics: 'Included resources were truncated at the server limit', expression: ['_include'] });
  }
  return issue.length > 0 ? { resourceType: 'OperationOutcome', issue } : undefined;
}

/** Runs a parsed search and builds its searchset Bundle. */
export async function runSearch(q: Queryable, ps: ParsedSearch, opts: SearchOptions): Promise<SearchResult> {
  if (ps.summary === 'count') {
    const total = await count(q, ps);
    const bundle = buildBundle({ ps, baseUrl: opts.baseUrl, matches: [], included: [], total, outcome: warnings(ps, false) });
    return { bundle, matches: [], included: [] };
  }
  let matches: StoredRow[] = [];
  let nextCursor: string | undefined;
  let total: number | undefined;
  if (ps.count > 0) {
    const { sql, params } = pageQuery(ps, ps.count + 1);
    const { rows } = await q.query<PageRow>(sql, params);
    const page = rows.slice(0, ps.count);
    if (rows.length > ps.count) {
      const last = page[page.length - 1];
      nextCursor = encodeCursor({ rid: Number(last.rid), keys: ps.sort.map((_, i) => last[`k${i}`] ?? null) });
    } else if (!ps.cursor) {
      total = page.length; // the whole result is on this page: the total is free
    }
    matches = await readByRids(
      q,
      page.map((r) => Number(r.rid)),
    );
  }
  if (ps.total === 'accurate' || (ps.count === 0 && ps.total !== 'none')) total = await count(q, ps);
  if (ps.total === 'none') total = undefined;
  const inc = await findIncludes(q, ps.includes, matches, opts.maxIncludes);
  const bundle = buildBundle({
    ps,
    baseUrl: opts.baseUrl,
    matches,
    included: inc.rows,
    total,
    nextCursor,
    selfCursor: ps.cursor ? encodeCursor(ps.cursor) : undefined,
    outcome: warnings(ps, inc.truncated),
  });
  return { bundle, matches, included: inc.rows };
}

/** Full search producing a FHIR searchset Bundle; type undefined = search across all types. */
export async function searchBundle(q: Queryable, type: string | undefined, query: SearchQuery, opts: SearchOptions): Promise<SearchResult> {
  return runSearch(q, parseSearch(type, query, opts), opts);
}

/**
 * Current, non-deleted resources matching the query, at most `limit` (conditional create,
 * update, delete and conditional references). Result parameters other than filters are ignored.
 */
export async function findMatches(q: Queryable, type: string, query: SearchQuery, limit: number): Promise<StoredRow[]> {
  const ps = parseSearch(type, query, { baseUrl: '', defaultCount: limit, maxCount: limit, maxIncludes: 0 });
  const { sql, params } = pageQuery({ ...ps, sort: [], cursor: undefined }, limit);
  const { rows } = await q.query<PageRow>(sql, params);
  return readByRids(
    q,
    rows.map((r) => Number(r.rid)),
  );
}

/** The SQL and bind parameters of the first page of a search, as the engine runs it (EXPLAIN, diagnostics). */
export function explainSearch(type: string | undefined, query: SearchQuery, opts: SearchOptions): SqlStatement {
  const ps = parseSearch(type, query, opts);
  return pageQuery(ps, ps.count + 1);
}

/** A condition that is one token parameter with one `system|code` value (how a conditional write names its key). */
export interface TokenKey {
  readonly code: string;
  readonly system: string;
  readonly value: string;
}

const MATCH_OPTIONS: SearchOptions = { baseUrl: '', defaultCount: 2, maxCount: 2, maxIncludes: 0 };

/**
 * The token key of a conditional query, when it is exactly one token parameter (no modifier)
 * with one value that names both system and code, e.g. `identifier=sys|value`; undefined for any
 * other query (those are matched one by one with findMatches). Parsed as a search, escapes included.
 */
export function tokenKeyOf(type: string, query: SearchQuery): TokenKey | undefined {
  let ps: ParsedSearch;
  try {
    ps = parseSearch(type, query, MATCH_OPTIONS);
  } catch {
    return undefined; // the one-by-one match reports the error where it belongs
  }
  if (ps.filters.length !== 1 || ps.includes.length > 0) return undefined;
  const f = ps.filters[0];
  if (f.kind !== 'token' || f.column !== 'index' || f.modifier !== undefined || f.values.length !== 1) return undefined;
  const v = f.values[0] as TokenValue;
  return typeof v === 'object' && typeof v.system === 'string' && typeof v.code === 'string' ? { code: f.code, system: v.system, value: v.code } : undefined;
}

/**
 * The current, non-deleted resources of one type matching each token key (what findMatches
 * returns for `code=system|value`), for many keys in one statement: one list per key, in the
 * order asked, each in rid order.
 */
export async function findByTokenKeys(q: Queryable, type: string, keys: readonly TokenKey[]): Promise<StoredRow[][]> {
  const out: StoredRow[][] = keys.map(() => []);
  if (keys.length === 0) return out;
  const { rows } = await q.query<{ i: number; rid: number }>(
    `SELECT DISTINCT x.i, t.rid
       FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(c, s, v, i)
       JOIN sp_token t ON t.rtype = $1 AND t.code = x.c AND t.value = x.v AND t.system = x.s
       JOIN resource r ON r.rid = t.rid AND NOT r.deleted
      ORDER BY x.i, t.rid`,
    [type, keys.map((k) => k.code), keys.map((k) => k.system), keys.map((k) => k.value)],
  );
  const stored = new Map((await readByRids(q, [...new Set(rows.map((r) => Number(r.rid)))])).map((r) => [r.rid, r]));
  for (const r of rows) {
    const row = stored.get(Number(r.rid));
    if (row) out[Number(r.i) - 1].push(row);
  }
  return out;
}
