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
import type { ParsedSearch, SearchOptions, SearchQuery } from './types.js';

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
