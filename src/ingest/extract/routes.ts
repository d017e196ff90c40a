/**
 * HIS database extracts, registered under /ingest:
 *   POST /extract/{kind}   text/csv (header row; charset=UTF-8 | GBK | GB18030) or application/x-ndjson
 *                          → the finished job (rows read, stored, rejected); streamed, any size
 *   GET  /jobs             the newest jobs of the client's institution (all, for the administrator)
 *   GET  /jobs/{id}        one job, while it runs and after
 * Rows are written for the posting client's own institution only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GatewayError } from '../../errors.js';
import type { RequestContext } from '../../fhir/index.js';
import type { ExtractMapping } from './mappings.js';
import { createJob, getJob, listJobs, type Job } from './jobs.js';
import { EXTRACT_CHARSETS, runExtract, type ExtractCharset, type ExtractDeps, type ExtractFormat } from './run.js';

const CSV_TYPES = ['text/csv'];
const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson'];

export interface ExtractRoutesOptions extends ExtractDeps {
  readonly mappings: ReadonlyMap<string, ExtractMapping>;
}

function contextOf(req: FastifyRequest): RequestContext {
  const a = req.auth;
  return { channel: 'extract', sourceIp: req.ip, requestId: String(req.id), clientId: a?.clientId, institution: a?.institution, userId: a?.userId, scopes: a?.scopes ?? [], role: a?.role, subordinates: a?.subordinates };
}

function formatOf(req: FastifyRequest): { format: ExtractFormat; charset: ExtractCharset } {
  const header = String(req.headers['content-type'] ?? '');
  const type = header.split(';')[0].trim().toLowerCase();
  const format: ExtractFormat | undefined = CSV_TYPES.includes(type) ? 'csv' : NDJSON_TYPES.includes(type) ? 'ndjson' : undefined;
  if (!format) throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'Post an extract as text/csv (with a header row) or application/x-ndjson', { expression: 'Content-Type' });
  const named = /;\s*charset\s*=\s*"?([A-Za-z0-9_-]+)"?/i.exec(header)?.[1]?.toUpperCase().replace(/^UTF8$/, 'UTF-8');
  const charset = (named ?? 'UTF-8') as ExtractCharset;
  if (!EXTRACT_CHARSETS.includes(charset)) throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', `charset must be one of ${EXTRACT_CHARSETS.join(', ')}`, { expression: 'Content-Type' });
  if (format === 'ndjson' && charset !== 'UTF-8') throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'NDJSON is UTF-8', { expression: 'Content-Type' });
  return { format, charset };
}

function visible(job: Job | undefined, ctx: RequestContext): job is Job {
  return !!job && (ctx.institution ? job.institution === ctx.institution : ctx.role === 'admin');
}

export async function extractRoutes(app: FastifyInstance, opts: ExtractRoutesOptions): Promise<void> {
  const { db, mappings } = opts;
  // The body is read by the loader as a stream, never buffered whole.
  app.addContentTypeParser([...CSV_TYPES, ...NDJSON_TYPES], (_req, payload, done) => done(null, payload));

  app.post<{ Params: { kind: string } }>('/extract/:kind', { config: { interaction: 'extract' } }, async (req, reply) => {
    const ctx = contextOf(req);
    const mapping = mappings.get(req.params.kind);
    if (!mapping) throw new GatewayError('GW_ERR_NOT_FOUND', `Unknown extract kind "${req.params.kind}"; known: ${[...mappings.keys()].join(', ')}`, { expression: 'kind' });
    const { format, charset } = formatOf(req);
    if (!ctx.institution) throw new GatewayError('GW_ERR_FORBIDDEN', `Client "${ctx.clientId ?? 'unknown'}" acts for no member institution; extracts are written only for the posting client's own institution`);
    const job = await createJob(db, { id: randomUUID(), kind: mapping.kind, format, charset, institution: ctx.institution, clientId: ctx.clientId });
    const done = await runExtract(opts, { job, mapping, ctx: { ...ctx, institution: ctx.institution }, remoteAddress: req.ip }, req.body as Readable, format, charset);
    return reply.code(200).header('location', `/ingest/jobs/${job.id}`).send(done);
  });

  app.get('/jobs', { config: { interaction: 'extract-jobs' } }, async (req) => {
    const ctx = contextOf(req);
    if (!ctx.institution && ctx.role !== 'admin') throw new GatewayError('GW_ERR_FORBIDDEN', 'Only member institutions and the administrator see load jobs');
    return { items: await listJobs(db, ctx.institution, 100) };
  });

  app.get<{ Params: { id: string } }>('/jobs/:id', { config: { interaction: 'extract-job' } }, async (req) => {
    const job = /^[0-9a-f-]{36}$/.test(req.params.id) ? await getJob(db, req.params.id) : undefined;
    if (!visible(job, contextOf(req))) throw new GatewayError('GW_ERR_NOT_FOUND', `Job ${req.params.id} not found`, { expression: 'id' });
    return job;
  });
}
