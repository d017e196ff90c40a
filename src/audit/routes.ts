/**
 * The audit trail over HTTP, for auditors: search and read of AuditEvent, `$verify` of the hash
 * chains and an NDJSON `$export` of a time range. AuditEvents are written only by the gateway
 * itself: POST, PUT, PATCH and DELETE answer 405. Every read of the trail is itself audited,
 * before the response is sent. Registered under /fhir before the generic FHIR routes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { Config } from '../config.js';
import type { Db } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { restContext } from '../fhir/routes.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { queryFromString } from '../store/search/index.js';
import { appendAuditEvents } from './chain.js';
import type { AccessRecord, Interaction } from './event.js';
import { assertAuditorScope, type AuditPermission } from './access.js';
import { dateRange, exportAuditEvents, parseAuditSearch, readAuditEvent, searchAuditEvents, type AuditQuery } from './search.js';
import { verifyAuditChains, type VerifyResult } from './verify.js';
import { personsByIdentifier } from '../mpi/index.js';

/**
 * `patient:identifier=system|value` (any identifier of any linked record: resident ID card
 * number, a local MRN, …) becomes `patient=` every Patient of the person(s) it names, so that
 * one search answers "who saw this person's record" across institutions.
 */
async function resolvePatientIdentifier(db: Db, query: AuditQuery): Promise<AuditQuery> {
  const raw = query['patient:identifier'];
  if (raw === undefined) return query;
  const refs: string[] = [];
  for (const v of ([] as string[]).concat(raw)) {
    const bar = v.indexOf('|');
    if (bar <= 0 || bar === v.length - 1) throw new GatewayError('GW_ERR_INVALID_SEARCH', 'patient:identifier takes system|value', { expression: 'patient:identifier' });
    for (const person of await personsByIdentifier(db, { system: v.slice(0, bar), value: v.slice(bar + 1) })) refs.push(...person.patients.map((p) => `Patient/${p.id}`));
  }
  const { 'patient:identifier': _, ...rest } = query;
  // No such person: a reference nobody has, so that the search answers an empty page.
  return { ...rest, patient: [...([] as string[]).concat(rest.patient ?? []), refs.length ? [...new Set(refs)].join(',') : 'Patient/none'] };
}

export interface AuditRoutesOptions {
  readonly db: Db;
  readonly config: Pick<Config, 'baseUrl' | 'defaultPageSize' | 'maxPageSize'>;
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const NDJSON = 'application/fhir+ndjson; charset=utf-8';
const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

/** The request context (client, institution, scopes of the verified token). */
function auditContext(req: FastifyRequest): RequestContext {
  return restContext(req);
}

function queryText(req: FastifyRequest): string {
  const i = req.url.indexOf('?');
  return i === -1 ? '' : req.url.slice(i + 1);
}

function sendJson(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).header('content-type', FHIR_JSON).send(body);
}

function checkFormat(query: AuditQuery, accept: RegExp): void {
  const f = ([] as string[]).concat(query._format ?? [])[0];
  if (f !== undefined && !accept.test(f)) throw new GatewayError('GW_ERR_NOT_ACCEPTABLE', `_format=${f} is not served here`, { expression: '_format' });
}

function int(name: string, n: number): ParametersParameter {
  return Number.isSafeInteger(n) && Math.abs(n) <= 2_147_483_647 ? { name, valueInteger: n } : { name, valueDecimal: n };
}

/** The result of $verify as a FHIR Parameters resource. */
export function verifyParameters(r: VerifyResult): Parameters {
  const parameter: ParametersParameter[] = [{ name: 'result', valueBoolean: r.ok }, int('checked', r.checked), int('chains', r.chains)];
  if (r.firstBroken) {
    const b = r.firstBroken;
    parameter.push({
      name: 'firstBroken',
      part: [
        int('chain', b.chain),
        int('seq', b.seq),
        { name: 'reason', valueCode: b.reason },
        ...(b.id ? [{ name: 'record', valueReference: { reference: `AuditEvent/${b.id}` } }] : []),
      ],
    });
  }
  for (const c of r.reports) {
    parameter.push({
      name: 'chain',
      part: [
        int('chain', c.chain),
        { name: 'active', valueBoolean: c.active },
        { name: 'algorithm', valueCode: c.alg },
        int('anchorSeq', c.anchorSeq),
        int('headSeq', c.headSeq),
        { name: 'headHash', valueString: c.headHash },
        int('checked', c.checked),
        { name: 'ok', valueBoolean: c.broken === undefined },
      ],
    });
  }
  return { resourceType: 'Parameters', parameter };
}

export async function auditRoutes(app: FastifyInstance, opts: AuditRoutesOptions): Promise<void> {
  const { db, config } = opts;
  const base = `${config.baseUrl}/fhir`;
  const limits = { defaultCount: config.defaultPageSize, maxCount: config.maxPageSize };

  // Bodies: forms for POST _search; anything else (a Parameters body of $verify) is not read.
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, queryFromString(body as string)));
  }
  for (const type of ['application/json', 'application/fhir+json']) {
    if (!app.hasContentTypeParser(type)) app.addContentTypeParser(type, { parseAs: 'buffer' }, (_req, _body, done) => done(null, undefined));
  }

  /** Records an access to the audit trail itself (its own transaction). */
  const audit = async (ctx: RequestContext, rec: AccessRecord): Promise<void> => {
    await appendAuditEvents(db, ctx, [rec]);
  };

  /**
   * The one place where access to the audit trail is checked. A refusal is itself recorded as
   * a failed access, then answered.
   */
  const authorize = async (ctx: RequestContext, perm: AuditPermission, interaction: Interaction, operation?: string): Promise<void> => {
    try {
      assertAuditorScope(ctx, perm);
    } catch (e) {
      if (isGatewayError(e)) {
        await audit(ctx, { interaction, outcome: '4', outcomeText: e.message, resources: [], patients: [], ...(operation ? { operation } : {}) });
      }
      throw e;
    }
  };

  const search = async (req: FastifyRequest, reply: FastifyReply, asked: AuditQuery): Promise<FastifyReply> => {
    const ctx = auditContext(req);
    checkFormat(asked, /json/i);
    await authorize(ctx, 's', 'search-type');
    const query = await resolvePatientIdentifier(db, asked);
    const parsed = parseAuditSearch(query, limits);
    const page = await searchAuditEvents(db, parsed);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) for (const x of ([] as string[]).concat(v ?? [])) if (k !== '_cursor') params.append(k, x);
    const self = `${base}/AuditEvent${params.size ? `?${params}` : ''}`;
    const links = [{ relation: 'self', url: queryText(req) ? `${base}/AuditEvent?${queryText(req)}` : self }];
    if (page.next) {
      params.set('_cursor', page.next);
      links.push({ relation: 'next', url: `${base}/AuditEvent?${params}` });
    }
    await audit(ctx, {
      interaction: 'search-type',
      outcome: '0',
      resources: page.ids.map((id) => `AuditEvent/${id}`),
      patients: parsed.patients,
      query: `AuditEvent?${new URLSearchParams(Object.entries(query).flatMap(([k, v]) => ([] as string[]).concat(v ?? []).map((x): [string, string] => [k, x])))}`,
    });
    const entries = page.contents.map((c, i) => `{"fullUrl":${JSON.stringify(`${base}/AuditEvent/${page.ids[i]}`)},"resource":${c},"search":{"mode":"match"}}`);
    return sendJson(reply, 200, `{"resourceType":"Bundle","type":"searchset","link":${JSON.stringify(links)},"entry":[${entries.join(',')}]}`);
  };

  app.get('/AuditEvent', { config: { interaction: 'search-type' } }, async (req, reply) => search(req, reply, req.query as AuditQuery));

  app.post('/AuditEvent/_search', { config: { interaction: 'search-type' } }, async (req, reply) => {
    const merged: Record<string, string[]> = {};
    const add = (source: unknown) => {
      if (!source || typeof source !== 'object') return;
      for (const [k, v] of Object.entries(source as AuditQuery)) for (const x of ([] as unknown[]).concat(v ?? [])) if (typeof x === 'string') (merged[k] ??= []).push(x);
    };
    add(req.query);
    add(req.body);
    return search(req, reply, merged);
  });

  const verify = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const ctx = auditContext(req);
    await authorize(ctx, 'r', 'operation', '$verify');
    const result = await verifyAuditChains(db);
    await audit(ctx, {
      interaction: 'operation',
      operation: '$verify',
      outcome: '0',
      outcomeText: result.ok ? `${result.checked} records verified` : `broken at chain ${result.firstBroken?.chain} seq ${result.firstBroken?.seq}: ${result.firstBroken?.reason}`,
      resources: result.firstBroken?.id ? [`AuditEvent/${result.firstBroken.id}`] : [],
      patients: [],
      query: 'AuditEvent/$verify',
    });
    return sendJson(reply, 200, JSON.stringify(verifyParameters(result)));
  };
  app.get('/AuditEvent/$verify', { config: { interaction: 'operation' } }, verify);
  app.post('/AuditEvent/$verify', { config: { interaction: 'operation' } }, verify);

  app.get('/AuditEvent/$export', { config: { interaction: 'operation' } }, async (req, reply) => {
    const ctx = auditContext(req);
    const query = req.query as AuditQuery;
    checkFormat(query, /ndjson/i);
    await authorize(ctx, 's', 'operation', '$export');
    for (const k of Object.keys(query)) {
      if (!['start', 'end', '_format'].includes(k)) throw new GatewayError('GW_ERR_BAD_REQUEST', `$export takes start and end, not "${k}"`, { expression: k });
    }
    const one = (name: string): string | undefined => {
      const v = ([] as string[]).concat(query[name] ?? []);
      if (v.length > 1) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} is given more than once`, { expression: name });
      return v[0];
    };
    const startRaw = one('start');
    if (!startRaw) throw new GatewayError('GW_ERR_BAD_REQUEST', '$export needs start (a date or instant); end is optional (default: now)', { expression: 'start' });
    const start = dateRange(startRaw, 'start').lo;
    const endRaw = one('end');
    const end = endRaw ? dateRange(endRaw, 'end').hi : new Date(Date.now() + 1);
    if (end <= start) throw new GatewayError('GW_ERR_BAD_REQUEST', 'end is before start', { expression: 'end' });
    await audit(ctx, { interaction: 'operation', operation: '$export', outcome: '0', resources: [], patients: [], query: `AuditEvent/$export?${queryText(req)}` });
    return reply.code(200).header('content-type', NDJSON).send(Readable.from(exportAuditEvents(db, start, end)));
  });

  app.get<{ Params: { id: string } }>('/AuditEvent/:id', { config: { interaction: 'read' } }, async (req, reply) => {
    const ctx = auditContext(req);
    checkFormat(req.query as AuditQuery, /json/i);
    await authorize(ctx, 'r', 'read');
    const { id } = req.params;
    const content = ID_RE.test(id) ? await readAuditEvent(db, id) : undefined;
    if (content === undefined) throw new GatewayError('GW_ERR_NOT_FOUND', `AuditEvent/${id} not found`, { expression: `AuditEvent/${id}` });
    await audit(ctx, { interaction: 'read', outcome: '0', resources: [`AuditEvent/${id}`], patients: [] });
    return sendJson(reply, 200, content);
  });

  // Writes are the gateway's alone: refused before any body is read.
  const WRITE: Record<string, Interaction> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  const refuse = async (req: FastifyRequest): Promise<never> => {
    const e = new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', `AuditEvent is written by the gateway only; ${req.method} is not allowed`, { expression: 'AuditEvent' });
    const id = (req.params as { id?: string }).id;
    await audit(auditContext(req), { interaction: WRITE[req.method] ?? 'operation', outcome: '4', outcomeText: e.message, resources: id && ID_RE.test(id) ? [`AuditEvent/${id}`] : [], patients: [] });
    throw e;
  };
  for (const url of ['/AuditEvent', '/AuditEvent/:id']) {
    app.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE'], url, onRequest: refuse, handler: refuse });
  }
}
