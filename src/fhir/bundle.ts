/**
 * `batch` and `transaction` Bundles posted to the base URL. A transaction is all-or-nothing: its
 * writes go through the write path together in one database transaction, then its reads run in
 * that same transaction. A batch runs each entry on its own and reports each entry's outcome.
 */
import type { Binary, Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import { GatewayError } from '../errors.js';
import type { Queryable } from '../store/index.js';
import { queryFromString } from '../store/search/index.js';
import type { RequestContext } from './context.js';
import type { Repository } from './repository.js';
import type { WriteRequest, WriteResult } from './write-path.js';
import { toGatewayError } from './outcome.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

export interface ParsedUrl {
  readonly type?: string;
  readonly id?: string;
  readonly versionId?: string;
  readonly history: boolean;
  readonly query?: string;
}

/** Parses an entry's request.url: `Type`, `Type/id`, `Type/id/_history/v`, `Type?query`, relative or absolute. */
export function parseEntryUrl(url: string, baseUrl: string): ParsedUrl {
  let rel = url.startsWith(baseUrl + '/') ? url.slice(baseUrl.length + 1) : url;
  rel = rel.replace(/^\/+/, '');
  const qi = rel.indexOf('?');
  const path = qi === -1 ? rel : rel.slice(0, qi);
  const query = qi === -1 ? undefined : rel.slice(qi + 1);
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0) return { history: false, query };
  if (parts[0] === '_history') return { history: true, query };
  const [type, second, third, fourth] = parts;
  if (second === '_history') return { type, history: true, query };
  if (second === '_search') return { type, history: false, query: query ?? '' };
  if (third === '_history') return { type, id: second, versionId: fourth, history: fourth === undefined, query };
  return { type, id: second, history: false, query };
}


function parseIfMatch(value: string | undefined, where: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(?:W\/)?"?(\d+)"?$/.exec(value.trim());
  if (!m) throw new GatewayError('GW_ERR_BAD_REQUEST', `Invalid ifMatch "${value}"; expected W/"<version>"`, { expression: where });
  return Number(m[1]);
}

function patchOf(entry: BundleEntry, where: string): Operation[] {
  const r = entry.resource as Binary | undefined;
  if (r?.resourceType === 'Binary' && r.data) {
    try {
      const ops = JSON.parse(Buffer.from(r.data, 'base64').toString('utf8')) as unknown;
      if (Array.isArray(ops)) return ops as Operation[];
    } catch {
      /* reported below */
    }
  }
  throw new GatewayError('GW_ERR_INVALID_PATCH', 'A PATCH entry needs a Binary resource holding a JSON Patch array (contentType application/json-patch+json)', {
    expression: `${where}.resource`,
  });
}

/** Turns a non-GET entry into a write request. */
function toWriteRequest(entry: BundleEntry, index: number, baseUrl: string): WriteRequest {
  const where = `Bundle.entry[${index}]`;
  const method = entry.request?.method as WriteRequest['method'];
  const url = parseEntryUrl(entry.request?.url ?? '', baseUrl);
  if (!url.type) throw new GatewayError('GW_ERR_INVALID_BUNDLE', `Entry request.url "${entry.request?.url}" names no resource type`, { expression: `${where}.request.url` });
  const common = { type: url.type, fullUrl: entry.fullUrl, path: where, ifMatch: parseIfMatch(entry.request?.ifMatch, `${where}.request.ifMatch`) };
  switch (method) {
    case 'POST':
      return { ...common, method, resource: entry.resource, ifNoneExist: entry.request?.ifNoneExist?.replace(/^[A-Za-z]+\?/, '') };
    case 'PUT':
      return { ...common, method, id: url.id, condition: url.id ? undefined : url.query, resource: entry.resource };
    case 'PATCH':
      return { ...common, method, id: url.id, condition: url.id ? undefined : url.query, patch: patchOf(entry, where) };
    default:
      return { ...common, method: 'DELETE', id: url.id, condition: url.id ? undefined : url.query };
  }
}

const STATUS_TEXT: Record<number, string> = { 200: '200 OK', 201: '201 Created', 204: '204 No Content' };

function writeResponse(r: WriteResult, minimal: boolean): BundleEntry {
  const e: BundleEntry = {
    response: {
      status: STATUS_TEXT[r.status] ?? String(r.status),
      ...(r.versionId !== undefined && r.id ? { location: `${r.type}/${r.id}/_history/${r.versionId}`, etag: `W/"${r.versionId}"` } : {}),
      ...(r.lastUpdated ? { lastModified: r.lastUpdated } : {}),
    },
  };
  if (!minimal && r.resource) e.resource = r.resource;
  return e;
}

async function readEntry(repo: Repository, entry: BundleEntry, ctx: RequestContext, q: Queryable): Promise<BundleEntry> {
  const url = parseEntryUrl(entry.request?.url ?? '', repo.searchOptions.baseUrl);
  let resource: Resource;
  if (url.history) {
    resource = await repo.history({ type: url.type, id: url.id }, queryFromString(url.query ?? ''), ctx, q);
  } else if (url.type && url.id && url.versionId) {
    const row = await repo.vread(url.type, url.id, url.versionId, ctx, q);
    resource = JSON.parse(row.content as string) as Resource;
  } else if (url.type && url.id) {
    const row = await repo.read(url.type, url.id, ctx, q);
    resource = JSON.parse(row.content as string) as Resource;
  } else {
    resource = await repo.search(url.type, queryFromString(url.query ?? ''), ctx, q);
  }
  const meta = (resource as Resource).meta;
  return {
    resource,
    response: { status: '200 OK', ...(meta?.versionId ? { etag: `W/"${meta.versionId}"` } : {}), ...(meta?.lastUpdated ? { lastModified: meta.lastUpdated } : {}) },
  };
}

function checkShape(bundle: Bundle): BundleEntry[] {
  if (bundle?.resourceType !== 'Bundle') {
    throw new GatewayError('GW_ERR_INVALID_BUNDLE', 'POST to the base URL takes a Bundle of type batch or transaction', { expression: 'resourceType' });
  }
  if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
    throw new GatewayError('GW_ERR_INVALID_BUNDLE', `Bundle.type must be batch or transaction, got "${String(bundle.type)}"`, { expression: 'Bundle.type' });
  }
  const entries = bundle.entry ?? [];
  if (!Array.isArray(entries)) throw new GatewayError('GW_ERR_INVALID_BUNDLE', 'Bundle.entry must be an array', { expression: 'Bundle.entry' });
  const fullUrls = new Set<string>();
  entries.forEach((e, i) => {
    const method = e?.request?.method;
    if (!method || !METHODS.has(method) || typeof e.request?.url !== 'string') {
      throw new GatewayError('GW_ERR_INVALID_BUNDLE', 'Each entry needs request.method (GET, POST, PUT, PATCH, DELETE) and request.url', {
        expression: `Bundle.entry[${i}].request`,
      });
    }
    if (e.fullUrl) {
      if (bundle.type === 'transaction' && fullUrls.has(e.fullUrl)) {
        throw new GatewayError('GW_ERR_INVALID_BUNDLE', `fullUrl "${e.fullUrl}" appears twice`, { expression: `Bundle.entry[${i}].fullUrl` });
      }
      fullUrls.add(e.fullUrl);
    }
  });
  return entries;
}

/** Processes a batch or transaction Bundle and returns its response Bundle. */
export async function processBundle(repo: Repository, bundle: Bundle, ctx: RequestContext, options: { minimal: boolean }): Promise<Bundle> {
  const entries = checkShape(bundle);
  const baseUrl = repo.searchOptions.baseUrl;
  const isRead = (e: BundleEntry) => e.request?.method === 'GET' || e.request?.method === 'HEAD';

  if (bundle.type === 'transaction') {
    const response = await repo.inTransaction(async (q, write) => {
      const writeIdx = entries.map((e, i) => i).filter((i) => !isRead(entries[i]));
      const requests = writeIdx.map((i) => toWriteRequest(entries[i], i, baseUrl));
      const results = await write(requests);
      const out: BundleEntry[] = new Array(entries.length);
      writeIdx.forEach((i, k) => (out[i] = writeResponse(results[k], options.minimal)));
      for (let i = 0; i < entries.length; i++) {
        if (isRead(entries[i])) out[i] = await readEntry(repo, entries[i], ctx, q);
      }
      return out;
    }, ctx);
    return { resourceType: 'Bundle', type: 'transaction-response', entry: response };
  }

  const out: BundleEntry[] = [];
  for (let i = 0; i < entries.length; i++) {
    try {
      if (isRead(entries[i])) {
        out.push(await readEntry(repo, entries[i], ctx, repo.db));
      } else {
        const [r] = await repo.write([toWriteRequest(entries[i], i, baseUrl)], ctx);
        out.push(writeResponse(r, options.minimal));
      }
    } catch (e) {
      const g = toGatewayError(e);
      out.push({ response: { status: String(g.statusCode), outcome: g.outcome } });
    }
  }
  return { resourceType: 'Bundle', type: 'batch-response', entry: out };
}
