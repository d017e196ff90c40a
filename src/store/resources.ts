/**
 * Storage primitives for resource versions. A write stores the new current row, an immutable
 * version row, and replaces the resource's search index rows; all of a transaction's writes go
 * out as a handful of set-based statements (unnest), whatever their number.
 */
import type { Resource } from '@medplum/fhirtypes';
import { StatementBatch, type Queryable } from './db.js';
import { INDEX_TABLES } from './migrations.js';
import { IndexRowSet, extractIndexRows } from './index-rows.js';

export interface StoredRow {
  readonly rid: number;
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly lastUpdated: string;
  readonly deleted: boolean;
  /** Canonical JSON of the version; null for a deletion. */
  readonly content: string | null;
}

export type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface VersionWrite {
  /** rid of the existing resource row; undefined for a first version. */
  readonly rid?: number;
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly lastUpdated: string;
  readonly method: WriteMethod;
  /** The version to store, with meta already set; undefined for a deletion. */
  readonly resource?: Resource;
}

/** A row of `resource` or `resource_version` as the database returns it. */
export interface RawRow {
  rid: number;
  type: string;
  id: string;
  version_id: number;
  last_updated: Date | string;
  deleted: boolean;
  content: string | null;
}

export function toStoredRow(r: RawRow): StoredRow {
  return {
    rid: Number(r.rid),
    type: r.type,
    id: r.id,
    versionId: Number(r.version_id),
    lastUpdated: r.last_updated instanceof Date ? r.last_updated.toISOString() : new Date(r.last_updated).toISOString(),
    deleted: r.deleted,
    content: r.content,
  };
}

export const ROW_COLUMNS = 'rid, type, id, version_id, last_updated, deleted, content';

/** The current row of a resource; with forUpdate, locked until the transaction ends. */
export async function readCurrent(q: Queryable, type: string, id: string, forUpdate = false): Promise<StoredRow | undefined> {
  const { rows } = await q.query<RawRow>(
    `SELECT ${ROW_COLUMNS} FROM resource WHERE type = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
    [type, id],
  );
  return rows[0] ? toStoredRow(rows[0]) : undefined;
}

/** Current rows by rid, in the order asked; with forUpdate, locked until the transaction ends. */
export async function readByRids(q: Queryable, rids: readonly number[], forUpdate = false): Promise<StoredRow[]> {
  if (rids.length === 0) return [];
  const { rows } = await q.query<RawRow>(`SELECT ${ROW_COLUMNS} FROM resource WHERE rid = ANY($1::bigint[])${forUpdate ? ' ORDER BY rid FOR UPDATE' : ''}`, [rids]);
  const byRid = new Map(rows.map((r) => [Number(r.rid), toStoredRow(r)]));
  return rids.map((r) => byRid.get(r)).filter((r): r is StoredRow => r !== undefined);
}

export async function readVersion(q: Queryable, type: string, id: string, versionId: number): Promise<StoredRow | undefined> {
  const { rows } = await q.query<RawRow>(
    `SELECT v.rid, v.type, v.id, v.version_id, v.last_updated, v.deleted, v.content
       FROM resource r JOIN resource_version v ON v.rid = r.rid
      WHERE r.type = $1 AND r.id = $2 AND v.version_id = $3`,
    [type, id, versionId],
  );
  return rows[0] ? toStoredRow(rows[0]) : undefined;
}

/**
 * Stores versions: new current rows, version rows, and fresh index rows. Returns the rid of
 * each write, in order. Callers run it inside a transaction and hold row locks on updated rows.
 * Two round trips at most, whatever the number of writes: the INSERT of new resources (it
 * assigns their rids), then one statement with everything else.
 */
export async function writeVersions(q: Queryable, writes: readonly VersionWrite[]): Promise<number[]> {
  const rids: number[] = new Array(writes.length);
  const contents = writes.map((w) => (w.resource ? JSON.stringify(w.resource) : null));

  const fresh = writes.map((w, i) => ({ w, i })).filter(({ w }) => w.rid === undefined);
  if (fresh.length > 0) {
    const { rows } = await q.query<{ rid: number; type: string; id: string }>(
      `INSERT INTO resource (type, id, version_id, last_updated, deleted, content)
       SELECT t, i, v, lu, d, c FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::bool[], $6::text[], $7::int[])
         AS x(t, i, v, lu, d, c, ord) ORDER BY ord
       RETURNING rid, type, id`,
      [
        fresh.map(({ w }) => w.type),
        fresh.map(({ w }) => w.id),
        fresh.map(({ w }) => w.versionId),
        fresh.map(({ w }) => w.lastUpdated),
        fresh.map(({ w }) => !w.resource),
        fresh.map(({ i }) => contents[i]),
        fresh.map(({ i }) => i),
      ],
    );
    // RETURNING order is not guaranteed: match rows back by (type, id).
    const byKey = new Map(rows.map((r) => [`${r.type}/${r.id}`, Number(r.rid)]));
    for (const { w, i } of fresh) rids[i] = byKey.get(`${w.type}/${w.id}`) as number;
  }

  const batch = new StatementBatch();
  const existing = writes.map((w, i) => ({ w, i })).filter(({ w }) => w.rid !== undefined);
  if (existing.length > 0) {
    batch.add(
      `UPDATE resource r SET version_id = x.v, last_updated = x.lu, deleted = x.d, content = x.c
         FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::bool[], $5::text[]) AS x(rid, v, lu, d, c)
        WHERE r.rid = x.rid`,
      [
        existing.map(({ w }) => w.rid),
        existing.map(({ w }) => w.versionId),
        existing.map(({ w }) => w.lastUpdated),
        existing.map(({ w }) => !w.resource),
        existing.map(({ i }) => contents[i]),
      ],
    );
    // The old index rows go in the same statement as the new ones: it sees only the old.
    const old = existing.map(({ w }) => w.rid as number);
    for (const table of INDEX_TABLES) batch.add(`DELETE FROM ${table} WHERE rid = ANY($1::bigint[])`, [old]);
    for (const { w, i } of existing) rids[i] = w.rid as number;
  }

  if (writes.length > 0) {
    batch.add(
      `INSERT INTO resource_version (rid, version_id, type, id, last_updated, deleted, method, content)
       SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::bool[], $7::text[], $8::text[])`,
      [
        rids,
        writes.map((w) => w.versionId),
        writes.map((w) => w.type),
        writes.map((w) => w.id),
        writes.map((w) => w.lastUpdated),
        writes.map((w) => !w.resource),
        writes.map((w) => w.method),
        contents,
      ],
    );
  }

  const index = new IndexRowSet();
  writes.forEach((w, i) => {
    if (w.resource) extractIndexRows(index, rids[i], w.resource);
  });
  index.addInserts(batch);
  await batch.run(q);
  return rids;
}
