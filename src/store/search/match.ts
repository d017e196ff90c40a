/**
 * Does one stored resource match a search? The matcher shared by conditional interactions and
 * subscriptions: the criteria are parsed exactly as a search is and run as that search restricted
 * to the resource's id, over the same index rows. A subscription and a search therefore never
 * disagree, whatever the parameter type, modifier or chain. Run inside the write's transaction it
 * sees the version being written.
 */
import type { Queryable } from '../db.js';
import { GatewayError } from '../../errors.js';
import { parseSearch } from './parse.js';
import { pageQuery } from './query.js';
import type { ParsedSearch, SearchQuery } from './types.js';

const MATCH_OPTIONS = { baseUrl: '', defaultCount: 1, maxCount: 1, maxIncludes: 0 } as const;

/**
 * Parses criteria that are to be matched against single resources: filters only. Result
 * parameters (_sort, _count, _include, _summary, ...) have no meaning for one resource and are
 * refused, so that a criteria string means the same thing everywhere. Throws GatewayError (400).
 */
export function parseCriteria(type: string, query: SearchQuery): ParsedSearch {
  const ps = parseSearch(type, query, MATCH_OPTIONS);
  const result = ps.canonical.map(([name]) => name).filter((n) => n.startsWith('_') && !['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source', '_has'].some((f) => n === f || n.startsWith(`${f}:`)));
  if (result.length > 0) {
    throw new GatewayError('GW_ERR_INVALID_SEARCH', `Criteria may hold search filters only, not ${[...new Set(result)].join(', ')}`, { expression: result[0] });
  }
  return ps;
}

/** True when the current version of `type/id` matches the parsed criteria. */
export async function matchesById(q: Queryable, ps: ParsedSearch, id: string): Promise<boolean> {
  const idFilter = parseSearch(ps.type, { _id: id }, MATCH_OPTIONS).filters;
  const { sql, params } = pageQuery({ ...ps, filters: [...ps.filters, ...idFilter], sort: [], cursor: undefined }, 1);
  const { rows } = await q.query(sql, params);
  return rows.length > 0;
}
