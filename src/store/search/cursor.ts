/**
 * The opaque `_cursor` of next links: the sort key values and rid of the last entry of a page.
 * The next page starts strictly after that position in (sort keys..., rid) order, so inserts and
 * deletes of other resources between pages never make a client skip or repeat one.
 */
import type { Cursor } from './types.js';
import { invalid } from './values.js';

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.rid, ...c.keys]), 'utf8').toString('base64url');
}

/** Decodes a cursor made for a search with `keyCount` sort keys; anything else is a 400. */
export function decodeCursor(raw: string, keyCount: number): Cursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw invalid('_cursor', 'not a cursor of this server');
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== keyCount + 1 ||
    !Number.isSafeInteger(parsed[0]) ||
    parsed[0] < 0 ||
    !parsed.slice(1).every((k) => k === null || (typeof k === 'string' && k.length < 2048))
  ) {
    throw invalid('_cursor', 'not a cursor of this search (was _sort changed?)');
  }
  return { rid: parsed[0] as number, keys: parsed.slice(1) as (string | null)[] };
}
