/**
 * History at instance, type and system level, newest first. Pages are cut by the global version
 * sequence (keyset), so a write between two page requests never shifts what the next page holds.
 */
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import { dateRange, readCurrent, toStoredRow, type Queryable, type RawRow, type StoredRow } from '../store/index.js';
import type { SearchOptions } from '../store/search/index.js';

export type HistoryQuery = Record<string, string | string[] | undefined>;

interface HistoryRow extends RawRow {
  seq: number;
  method: string;
}

function single(query: HistoryQuery, name: string): string | undefined {
  const v = query[name];
  if (Array.isArray(v)) {
    if (v.length > 1) throw new GatewayError('GW_ERR_INVALID_SEARCH', `Parameter ${name} may appear once`, { expression: name });
    return v[0];
  }
  return v;
}

const ALLOWED = new Set(['_count', '_since', '_at', '_cursor', '_format']);

export async function historyBundle(
  q: Queryable,
  target: { type?: string; id?: string },
  query: HistoryQuery,
  opts: SearchOptions,
): Promise<{ bundle: Bundle; rows: StoredRow[] }> {
  for (const k of Object.keys(query)) {
    if (!ALLOWED.has(k)) throw new GatewayError('GW_ERR_UNSUPPORTED_SEARCH', `History does not support parameter "${k}"`, { expression: k });
  }
  const countRaw = single(query, '_count');
  let count = opts.defaultCount;
  if (countRaw !== undefined) {
    if (!/^\d+$/.test(countRaw)) throw new GatewayError('GW_ERR_INVALID_SEARCH', `_count must be a whole number, got "${countRaw}"`, { expression: '_count' });
    count = Math.min(Number(countRaw), opts.maxCount);
  }
  const where: string[] = [];
  const params: unknown[] = [];
  if (target.type && target.id) {
    const cur = await readCurrent(q, target.type, target.id);
    if (!cur) throw new GatewayError('GW_ERR_NOT_FOUND', `${target.type}/${target.id} not found`, { expression: `${target.type}/${target.id}` });
    params.push(cur.rid);
    where.push(`v.rid = $${params.length}`);
  } else if (target.type) {
    params.push(target.type);
    where.push(`v.type = $${params.length}`);
  }
  for (const [name, op] of [
    ['_since', '>='],
    ['_at', '<='],
  ] as const) {
    const raw = single(query, name);
    if (raw === undefined) continue;
    const range = dateRange(raw);
    if (!range) throw new GatewayError('GW_ERR_INVALID_SEARCH', `${name} must be a FHIR instant, got "${raw}"`, { expression: name });
    params.push(name === '_since' ? range[0] : range[1]);
    where.push(`v.last_updated ${op} $${params.length}::timestamptz`);
  }
  const cursor = single(query, '_cursor');
  if (cursor !== undefined) {
    if (!/^\d+$/.test(cursor)) throw new GatewayError('GW_ERR_INVALID_SEARCH', 'Invalid _cursor', { expression: '_cursor' });
    params.push(Number(cursor));
    where.push(`v.seq < $${params.length}`);
  }
  params.push(count + 1);
  const { rows } = await q.query<HistoryRow>(
    `SELECT v.seq, v.rid, v.type, v.id, v.version_id, v.last_updated, v.deleted, v.method, v.content
       FROM resource_version v ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY v.seq DESC LIMIT $${params.length}`,
    params,
  );
  const page = rows.slice(0, count);
  const path = [target.type, target.id, '_history'].filter(Boolean).join('/');
  const base = `${opts.baseUrl}/${path}`;
  const keep = new URLSearchParams();
  for (const name of ['_since', '_at']) {
    const v = single(query, name);
    if (v !== undefined) keep.set(name, v);
  }
  keep.set('_count', String(count));
  const selfParams = new URLSearchParams(keep);
  if (cursor) selfParams.set('_cursor', cursor);
  const link: Bundle['link'] = [{ relation: 'self', url: `${base}?${selfParams}` }];
  if (rows.length > count && page.length > 0) {
    const next = new URLSearchParams(keep);
    next.set('_cursor', String(page[page.length - 1].seq));
    link.push({ relation: 'next', url: `${base}?${next}` });
  }
  const stored = page.map((r) => toStoredRow(r));
  const entry: BundleEntry[] = page.map((r, i) => {
    const s = stored[i];
    const e: BundleEntry = {
      fullUrl: `${opts.baseUrl}/${r.type}/${r.id}`,
      request: { method: r.method as 'POST', url: r.method === 'POST' ? r.type : `${r.type}/${r.id}` },
      response: {
        status: r.deleted ? '204' : r.version_id === 1 ? '201' : '200',
        etag: `W/"${r.version_id}"`,
        lastModified: s.lastUpdated,
      },
    };
    if (r.content) e.resource = JSON.parse(r.content) as Resource;
    return e;
  });
  return { bundle: { resourceType: 'Bundle', type: 'history', link, entry }, rows: stored };
}
