/**
 * FHIR REST routes: HTTP in, repository call, HTTP out. Each route names its interaction in its
 * config (metrics, audit). Bodies are application/fhir+json (application/json accepted),
 * application/json-patch+json for PATCH, form-encoded for POST _search.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import { GatewayError, okOutcome } from '../errors.js';
import type { Config } from '../config.js';
import type { RequestContext } from './context.js';
import type { Repository } from './repository.js';
import type { WriteResult } from './write-path.js';
import { processBundle } from './bundle.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

type Query = Record<string, string | string[] | undefined>;
interface TypeParams {
  type: string;
}
interface IdParams extends TypeParams {
  id: string;
}
interface VersionParams extends IdParams {
  vid: string;
}

export interface RouteDeps {
  readonly config: Config;
  readonly repository: Repository;
}

/**
 * The request context of a REST call, from the verified token (auth plugin). A request without
 * one gets no scopes at all, so it can do nothing: only the gateway's own work runs unscoped.
 */
export function restContext(req: FastifyRequest): RequestContext {
  const purpose = req.headers['x-purpose-of-use'];
  const auth = req.auth;
  return {
    channel: 'rest',
    sourceIp: req.ip,
    requestId: String(req.id),
    purposeOfUse: typeof purpose === 'string' && /^[A-Z]{2,12}$/.test(purpose) ? purpose : undefined,
    clientId: auth?.clientId,
    institution: auth?.institution,
    userId: auth?.userId,
    scopes: auth?.scopes ?? [],
    role: auth?.role,
    subordinates: auth?.subordinates,
    ...(auth?.patient ? { patient: auth.patient } : {}),
    ...breakGlassOf(req),
  };
}

/** `X-Break-Glass: <reason>`: read what consent withholds, in an emergency (purpose of use BTG). */
function breakGlassOf(req: FastifyRequest): { breakGlass?: string; purposeOfUse?: string } {
  const raw = req.headers['x-break-glass'];
  if (raw === undefined) return {};
  let reason = String(raw).trim();
  try {
    // Headers are Latin-1: a reason in Chinese comes percent-encoded.
    reason = decodeURIComponent(reason);
  } catch {
    // not encoded: taken as is
  }
  if (reason.length < 4) throw new GatewayError('GW_ERR_BAD_REQUEST', 'X-Break-Glass needs the reason for the emergency access', { expression: 'X-Break-Glass' });
  return { breakGlass: reason.slice(0, 500), purposeOfUse: 'BTG' };
}

interface Prefer {
  return?: 'minimal' | 'representation' | 'OperationOutcome';
  handling?: 'strict' | 'lenient';
}

export function parsePrefer(req: FastifyRequest): Prefer {
  const out: Prefer = {};
  const raw = req.headers.prefer;
  for (const part of (Array.isArray(raw) ? raw.join(',') : (raw ?? '')).split(/[,;]/)) {
    const [k, v] = part.trim().split('=').map((s) => s?.trim().replace(/^"|"$/g, ''));
    if (k === 'return' && (v === 'minimal' || v === 'representation' || v === 'OperationOutcome')) out.return = v;
    if (k === 'handling' && (v === 'strict' || v === 'lenient')) out.handling = v;
  }
  return out;
}

function lenient(req: FastifyRequest): boolean {
  return parsePrefer(req).handling === 'lenient';
}

function ifMatchOf(req: FastifyRequest): number | undefined {
  const raw = req.headers['if-match'];
  if (raw === undefined) return undefined;
  const m = /^(?:W\/)?"(\d+)"$/.exec(String(raw).trim());
  if (!m) throw new GatewayError('GW_ERR_BAD_REQUEST', `Invalid If-Match "${String(raw)}"; expected W/"<versionId>"`, { expression: 'If-Match' });
  return Number(m[1]);
}

function queryString(req: FastifyRequest): string {
  const i = req.url.indexOf('?');
  return i === -1 ? '' : req.url.slice(i + 1);
}

/** Drops `_format` (content negotiation, not a search criterion) after checking it asks for JSON. */
function stripFormat(query: Query): Query {
  const { _format: format, ...rest } = query;
  const f = ([] as string[]).concat(format ?? [])[0];
  if (f !== undefined && !/json/i.test(f)) {
    throw new GatewayError('GW_ERR_NOT_ACCEPTABLE', `Only JSON is served; _format=${f} is not supported`, { expression: '_format' });
  }
  return rest;
}

function checkAccept(req: FastifyRequest): void {
  const accept = req.headers.accept;
  if (!accept) return;
  if (/json|\*\/\*|application\/\*/i.test(accept)) return;
  throw new GatewayError('GW_ERR_NOT_ACCEPTABLE', `Only application/fhir+json is served, not "${accept}"`, { expression: 'Accept' });
}

function etag(versionId: number | string): string {
  return `W/"${versionId}"`;
}

function httpDate(iso: string): string {
  return new Date(iso).toUTCString();
}

function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', FHIR_JSON).send(typeof body === 'string' ? body : JSON.stringify(body));
}

/** Answers a create/update/patch per `Prefer: return=`. */
function sendWrite(reply: FastifyReply, req: FastifyRequest, r: WriteResult, baseUrl: string): FastifyReply {
  if (r.versionId !== undefined) {
    reply.header('etag', etag(r.versionId));
    if (r.lastUpdated) reply.header('last-modified', httpDate(r.lastUpdated));
    reply.header('location', `${baseUrl}/${r.type}/${r.id}/_history/${r.versionId}`);
  }
  const prefer = parsePrefer(req).return;
  if (prefer === 'minimal') return reply.code(r.status).send();
  if (prefer === 'OperationOutcome') {
    const what = r.noop ? 'matched an existing resource; nothing written' : r.status === 201 ? 'created' : 'updated';
    return sendJson(reply, r.status, okOutcome(`${r.type}/${r.id} ${what}`));
  }
  return sendJson(reply, r.status, r.resource);
}

function resourceBody(req: FastifyRequest): Resource {
  const body = req.body;
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The body must be a JSON object holding a FHIR resource', { expression: 'body' });
  }
  if (typeof (body as Resource).resourceType !== 'string') {
    throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The body has no resourceType', { expression: 'resourceType' });
  }
  return body as Resource;
}

export async function registerRestRoutes(app: FastifyInstance, deps: RouteDeps): Promise<void> {
  const { repository: repo, config } = deps;
  const base = config.baseUrl + '/fhir';

  app.addHook('onRequest', async (req) => checkAccept(req));

  // ---- whole-system ----
  app.post('/', { config: { interaction: 'transaction' } }, async (req, reply) => {
    const bundle = resourceBody(req) as Bundle;
    const result = await processBundle(repo, bundle, restContext(req), { minimal: parsePrefer(req).return === 'minimal' });
    return sendJson(reply, 200, result);
  });
  app.get('/', { config: { interaction: 'search-system' } }, async (req, reply) => {
    return sendJson(reply, 200, await repo.search(undefined, stripFormat(req.query as Query), restContext(req), undefined, lenient(req)));
  });
  app.get('/_history', { config: { interaction: 'history-system' } }, async (req, reply) => {
    return sendJson(reply, 200, await repo.history({}, stripFormat(req.query as Query), restContext(req)));
  });

  // ---- type level ----
  app.get<{ Params: TypeParams }>('/:type', { config: { interaction: 'search-type' } }, async (req, reply) => {
    return sendJson(reply, 200, await repo.search(req.params.type, stripFormat(req.query as Query), restContext(req), undefined, lenient(req)));
  });
  app.post<{ Params: TypeParams }>('/:type/_search', { config: { interaction: 'search-type' } }, async (req, reply) => {
    const merged: Record<string, string[]> = {};
    const add = (k: string, v: unknown) => {
      for (const x of ([] as unknown[]).concat(v)) if (typeof x === 'string') (merged[k] ??= []).push(x);
    };
    for (const [k, v] of Object.entries(req.query as Query)) add(k, v);
    if (req.body && typeof req.body === 'object') for (const [k, v] of Object.entries(req.body as Query)) add(k, v);
    return sendJson(reply, 200, await repo.search(req.params.type, stripFormat(merged), restContext(req), undefined, lenient(req)));
  });
  app.get<{ Params: TypeParams }>('/:type/_history', { config: { interaction: 'history-type' } }, async (req, reply) => {
    return sendJson(reply, 200, await repo.history({ type: req.params.type }, stripFormat(req.query as Query), restContext(req)));
  });
  app.post<{ Params: TypeParams }>('/:type', { config: { interaction: 'create' } }, async (req, reply) => {
    const resource = resourceBody(req);
    if (resource.resourceType !== req.params.type) {
      throw new GatewayError('GW_ERR_INVALID_RESOURCE', `Body is a ${resource.resourceType}, posted to ${req.params.type}`, { expression: 'resourceType' });
    }
    const ifNoneExist = req.headers['if-none-exist'];
    const condition = typeof ifNoneExist === 'string' ? ifNoneExist.replace(/^[A-Za-z]+\?/, '') : undefined;
    const r = await repo.create(resource, restContext(req), condition);
    return sendWrite(reply, req, r, base);
  });
  app.put<{ Params: TypeParams }>('/:type', { config: { interaction: 'update' } }, async (req, reply) => {
    const condition = queryString(req);
    if (!condition) throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'PUT on a type needs search criteria (conditional update) or an id', { expression: req.params.type });
    const r = await repo.conditionalUpdate(req.params.type, condition, resourceBody(req), restContext(req), ifMatchOf(req));
    return sendWrite(reply, req, r, base);
  });
  app.patch<{ Params: TypeParams }>('/:type', { config: { interaction: 'patch' } }, async (req, reply) => {
    const condition = queryString(req);
    if (!condition) throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'PATCH on a type needs search criteria or an id', { expression: req.params.type });
    const r = await repo.patch(req.params.type, { condition }, patchBody(req), restContext(req), ifMatchOf(req));
    return sendWrite(reply, req, r, base);
  });
  app.delete<{ Params: TypeParams }>('/:type', { config: { interaction: 'delete' } }, async (req, reply) => {
    const condition = queryString(req);
    if (!condition) throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'DELETE on a type needs search criteria (conditional delete) or an id', { expression: req.params.type });
    await repo.delete(req.params.type, { condition }, restContext(req));
    return reply.code(204).send();
  });

  // ---- instance level ----
  app.get<{ Params: IdParams }>('/:type/:id', { config: { interaction: 'read' } }, async (req, reply) => {
    stripFormat(req.query as Query);
    const row = await repo.read(req.params.type, req.params.id, restContext(req));
    const tag = etag(row.versionId);
    reply.header('etag', tag).header('last-modified', httpDate(row.lastUpdated));
    if (req.headers['if-none-match'] === tag) return reply.code(304).send();
    return sendJson(reply, 200, row.content);
  });
  app.put<{ Params: IdParams }>('/:type/:id', { config: { interaction: 'update' } }, async (req, reply) => {
    const r = await repo.update(req.params.type, req.params.id, resourceBody(req), restContext(req), ifMatchOf(req));
    return sendWrite(reply, req, r, base);
  });
  app.patch<{ Params: IdParams }>('/:type/:id', { config: { interaction: 'patch' } }, async (req, reply) => {
    const r = await repo.patch(req.params.type, { id: req.params.id }, patchBody(req), restContext(req), ifMatchOf(req));
    return sendWrite(reply, req, r, base);
  });
  app.delete<{ Params: IdParams }>('/:type/:id', { config: { interaction: 'delete' } }, async (req, reply) => {
    const r = await repo.delete(req.params.type, { id: req.params.id }, restContext(req));
    if (r.versionId !== undefined) reply.header('etag', etag(r.versionId));
    return reply.code(204).send();
  });
  app.get<{ Params: IdParams }>('/:type/:id/_history', { config: { interaction: 'history-instance' } }, async (req, reply) => {
    return sendJson(reply, 200, await repo.history({ type: req.params.type, id: req.params.id }, stripFormat(req.query as Query), restContext(req)));
  });
  app.get<{ Params: VersionParams }>('/:type/:id/_history/:vid', { config: { interaction: 'vread' } }, async (req, reply) => {
    const row = await repo.vread(req.params.type, req.params.id, req.params.vid, restContext(req));
    reply.header('etag', etag(row.versionId)).header('last-modified', httpDate(row.lastUpdated));
    return sendJson(reply, 200, row.content);
  });
}

function patchBody(req: FastifyRequest): Operation[] {
  const ct = String(req.headers['content-type'] ?? '');
  if (!ct.startsWith('application/json-patch+json')) {
    throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'PATCH takes a JSON Patch document (Content-Type: application/json-patch+json)', { expression: 'Content-Type' });
  }
  if (!Array.isArray(req.body)) throw new GatewayError('GW_ERR_INVALID_PATCH', 'A JSON Patch document is an array of operations', { expression: 'body' });
  return req.body as Operation[];
}
