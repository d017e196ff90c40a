/**
 * The parsed form of a FHIR search: plain data, independent of SQL, so that the same structure
 * can drive both the SQL translation and (later) an in-memory matcher for subscriptions.
 */

export interface SearchOptions {
  readonly baseUrl: string;
  readonly defaultCount: number;
  readonly maxCount: number;
  readonly maxIncludes: number;
  /** `Prefer: handling=lenient`: unknown parameters are ignored and reported instead of refused. */
  readonly lenient?: boolean;
}

export type SearchQuery = Record<string, string | string[] | undefined>;

/** The seven indexed parameter types. */
export type ParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'quantity' | 'uri';

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

/** A number, date or quantity value with its implicit range [lo, hi] (dates as ISO instants). */
export interface RangeValue {
  readonly prefix: Prefix;
  /** The value as written (number text, or the date's lower bound for dates). */
  readonly value: string;
  readonly lo: string;
  readonly hi: string;
  /** Quantity only: undefined = any system; unit matches the coded unit or the human-readable one. */
  readonly system?: string;
  readonly unit?: string;
}

/** Token: system undefined = any system, null = no system; code undefined = any code. */
export interface TokenValue {
  readonly system?: string | null;
  readonly code?: string;
}

/** Reference: type and id for a resource reference, or url for any other reference text. */
export interface ReferenceValue {
  readonly type?: string;
  readonly id?: string;
  readonly url?: string;
}

/** Where a parameter's values live: an index table, or a column of the resource table. */
export type ParamColumn = 'index' | 'id' | 'lastUpdated' | 'type';

interface ParamBase {
  /** The parameter as written in the query, for error messages. */
  readonly name: string;
  readonly code: string;
  readonly column: ParamColumn;
}

export type ValueFilter =
  | (ParamBase & { readonly kind: 'string'; readonly modifier?: 'exact' | 'contains'; readonly values: readonly string[] })
  | (ParamBase & { readonly kind: 'token'; readonly modifier?: 'not' | 'text'; readonly values: readonly (TokenValue | string)[] })
  | (ParamBase & { readonly kind: 'date' | 'number' | 'quantity'; readonly values: readonly RangeValue[] })
  | (ParamBase & { readonly kind: 'reference'; readonly modifier?: 'identifier'; readonly values: readonly (ReferenceValue | TokenValue)[] })
  | (ParamBase & { readonly kind: 'uri'; readonly modifier?: 'above' | 'below'; readonly values: readonly string[] });

/** One query parameter occurrence: filters of a search are ANDed, values within a filter ORed. */
export type Filter =
  | ValueFilter
  | { readonly kind: 'missing'; readonly name: string; readonly code: string; readonly type: ParamType; readonly missing: boolean }
  | {
      readonly kind: 'chain';
      readonly name: string;
      /** The reference parameter of the searched type. */
      readonly code: string;
      readonly targetType: string;
      readonly inner: Filter;
    }
  | {
      readonly kind: 'has';
      readonly name: string;
      /** Resources of sourceType whose reference parameter refCode points at the searched resource. */
      readonly sourceType: string;
      readonly refCode: string;
      readonly inner: Filter;
    };

export interface SortKey {
  readonly code: string;
  readonly descending: boolean;
  /** '_id' and '_lastUpdated' sort on the resource table. */
  readonly type: ParamType | 'id' | 'lastUpdated';
}

export interface IncludeSpec {
  readonly reverse: boolean;
  readonly iterate: boolean;
  /** Source resource type, or '*' for the wildcard. */
  readonly sourceType: string;
  /** Reference parameter code, or '*' for all reference parameters of sourceType. */
  readonly code: string;
  readonly targetType?: string;
}

export type SummaryMode = 'true' | 'false' | 'text' | 'data' | 'count';

export interface ParsedSearch {
  /** undefined = system-level search. */
  readonly type: string | undefined;
  /** System-level `_type`: the types searched; undefined = all. */
  readonly types?: readonly string[];
  readonly filters: readonly Filter[];
  readonly sort: readonly SortKey[];
  readonly count: number;
  readonly cursor?: Cursor;
  readonly includes: readonly IncludeSpec[];
  readonly total: 'none' | 'estimate' | 'accurate' | undefined;
  readonly summary?: SummaryMode;
  readonly elements?: readonly string[];
  /** Unknown parameters ignored under lenient handling. */
  readonly ignored: readonly string[];
  /** The query without `_cursor`, in a stable order, for self and next links. */
  readonly canonical: readonly (readonly [string, string])[];
}

/** Keyset position: the sort key values (as text) and rid of the last entry of the previous page. */
export interface Cursor {
  readonly keys: readonly (string | null)[];
  readonly rid: number;
}
