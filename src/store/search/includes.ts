/**
 * `_include` and `_revinclude` (with `:iterate`): resources referenced by, or referring to, the
 * matches, found through sp_reference. Included resources are deduplicated against the matches
 * and each other, and capped at maxIncludes.
 */
import type { Queryable } from '../db.js';
import { readByRids, type StoredRow } from '../resources.js';
import type { IncludeSpec } from './types.js';
import { SqlParams } from './where.js';

const MAX_ITERATIONS = 4;

function forwardSql(p: SqlParams, spec: IncludeSpec, rids: number[], seen: number[], limit: number): string {
  const conds = [`a.rid = ANY(${p.bind(rids, 'bigint[]')})`];
  if (spec.sourceType !== '*') conds.push(`a.rtype = ${p.bind(spec.sourceType)}`);
  if (spec.code !== '*') conds.push(`a.code = ${p.bind(spec.code)}`);
  if (spec.targetType) conds.push(`a.target_type = ${p.bind(spec.targetType)}`);
  conds.push('NOT t.deleted', `NOT (t.rid = ANY(${p.bind(seen, 'bigint[]')}))`);
  return (
    `SELECT DISTINCT t.rid FROM sp_reference a JOIN resource t ON t.type = a.target_type AND t.id = a.target_id ` +
    `WHERE ${conds.join(' AND ')} ORDER BY t.rid LIMIT ${p.bind(limit, 'bigint')}`
  );
}

function reverseSql(p: SqlParams, spec: IncludeSpec, rows: StoredRow[], seen: number[], limit: number): string {
  const types = p.bind(
    rows.map((r) => r.type),
    'text[]',
  );
  const ids = p.bind(
    rows.map((r) => r.id),
    'text[]',
  );
  const conds = [`(a.target_type, a.target_id) IN (SELECT * FROM unnest(${types}, ${ids}))`];
  if (spec.sourceType !== '*') conds.push(`a.rtype = ${p.bind(spec.sourceType)}`);
  if (spec.code !== '*') conds.push(`a.code = ${p.bind(spec.code)}`);
  if (spec.targetType) conds.push(`a.target_type = ${p.bind(spec.targetType)}`);
  conds.push('NOT s.deleted', `NOT (s.rid = ANY(${p.bind(seen, 'bigint[]')}))`);
  return (
    `SELECT DISTINCT s.rid FROM sp_reference a JOIN resource s ON s.rid = a.rid ` +
    `WHERE ${conds.join(' AND ')} ORDER BY s.rid LIMIT ${p.bind(limit, 'bigint')}`
  );
}

export interface IncludeResult {
  readonly rows: StoredRow[];
  /** True when more resources would have been included than maxIncludes. */
  readonly truncated: boolean;
}

/** The resources the include specs add to `matches`. */
export async function findIncludes(q: Queryable, specs: readonly IncludeSpec[], matches: StoredRow[], maxIncludes: number): Promise<IncludeResult> {
  const included: StoredRow[] = [];
  if (specs.length === 0 || matches.length === 0) return { rows: included, truncated: false };
  const seen = new Set(matches.map((m) => m.rid));
  let frontier = matches;
  let truncated = false;
  for (let round = 0; round < MAX_ITERATIONS && frontier.length > 0 && !truncated; round++) {
    const active = round === 0 ? specs : specs.filter((s) => s.iterate);
    if (active.length === 0) break;
    const fresh: number[] = [];
    for (const spec of active) {
      const room = maxIncludes - included.length - fresh.length;
      if (room <= 0) {
        truncated = true;
        break;
      }
      const p = new SqlParams();
      const sql = spec.reverse
        ? reverseSql(p, spec, frontier, [...seen], room + 1)
        : forwardSql(
            p,
            spec,
            frontier.map((r) => r.rid),
            [...seen],
            room + 1,
          );
      const { rows } = await q.query<{ rid: number }>(sql, p.values);
      const rids = rows.map((r) => Number(r.rid));
      if (rids.length > room) {
        truncated = true;
        rids.length = room;
      }
      for (const rid of rids) {
        if (!seen.has(rid)) {
          seen.add(rid);
          fresh.push(rid);
        }
      }
    }
    frontier = await readByRids(q, fresh);
    included.push(...frontier);
  }
  return { rows: included, truncated };
}
