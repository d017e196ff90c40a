/**
 * FHIR search over the index tables: parsing (parse.ts, filters.ts, values.ts), SQL translation
 * (where.ts, query.ts), keyset paging (cursor.ts), includes (includes.ts) and the searchset
 * Bundle (bundle.ts).
 */
export { searchBundle, findMatches, findByTokenKeys, tokenKeyOf, explainSearch, runSearch, type SearchResult, type TokenKey } from './search.js';
export { parseSearch, queryFromString } from './parse.js';
export { subset, SUBSETTED } from './bundle.js';
export type { SqlStatement } from './query.js';
export type {
  SearchOptions,
  SearchQuery,
  ParsedSearch,
  Filter,
  ValueFilter,
  SortKey,
  IncludeSpec,
  Cursor,
  ParamType,
  Prefix,
  RangeValue,
  TokenValue,
  ReferenceValue,
  SummaryMode,
} from './types.js';
export { parseCriteria, matchesById } from './match.js';
