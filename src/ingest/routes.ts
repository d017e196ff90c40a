/**
 * HTTP doors of the ingest folder, registered under /ingest:
 *   POST /hl7v2                          one HL7 v2 message posted by a sender's OAuth client → ACK
 *   GET  /dead-letters                   paged list (filters sender, error, status, type)
 *   GET  /dead-letters/:id               metadata, the message as text and as base64 (audited)
 *   POST /dead-letters/:id/$replay       run it through the pipeline again (an extract row: the extract loader; a DICOM post: storeDicom)
 *   POST /dead-letters/$replay           replay every new dead letter matching a filter
 *   POST /dead-letters/:id/$discard      discard with a reason (audited)
 *   GET  /feeds                          per institution and feed: messages, errors, last message, hourly series
 * The dead-letter API is for the community administrator only (see canManageDeadLetters): dead
 * letters hold whole messages of every institution, personal data included.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../fhir/index.js';
import { recordAccess, type Interaction } from '../audit/index.js';
import type { AuthInfo } from '../auth/index.js';
import type { Db } from '../store/index.js';
import type { components, operations } from '../openapi/types.js';
import { DEAD_LETTER_STATUSES, discardDeadLetter, getDeadLetter, listDeadLetters, matchingIds, recordReplay, type DeadLetter, type DeadLetterStatus } from './dead-letters.js';
import { isExtractDeadLetter, replayExtractRow, type ExtractReplayDeps } from './extract/replay.js';
import { isDicomDeadLetter, replayDicomPost, type DicomReplayDeps } from './dicom/index.js';
import { decodeRaw } from './envelope.js';
import type { IngestPipeline, PipelineResult } from './pipeline.js';
import { feedStatistics } from './feeds.js';
import type { SenderRegistry } from './senders.js';

type DeadLetterJson = components['schemas']['DeadLetter'];
type DeadLetterDetail = components['schemas']['DeadLetterDetail'];
type DeadLetterPage = components['schemas']['DeadLetterPage'];
type ReplayResultJson = components['schemas']['ReplayResult'];
type ReplayFilter = components['schemas']['ReplayFilter'];
type ListQuery = NonNullable<operations['listDeadLetters']['parameters']['query']>;

export const HL7_MEDIA_TYPE = 'x-application/hl7-v2+er7';
const HL7_BODY_TYPES = [HL7_MEDIA_TYPE, 'application/hl7-v2', 'text/plain'];
const MAX_COUNT = 500;

export interface IngestRoutesOptions {
  readonly pipeline: IngestPipeline;
  readonly db: Db;
  /** For GET /feeds: the registered senders, the institution of an OAuth client, the stale period. */
  readonly feeds?: { readonly senders: SenderRegistry; readonly staleMinutes: number; institutionOfClient(clientId: string): string | undefined };
  /** What replays rejected extract rows (dead letters `EXTRACT <kind>`); without it they are not replayed. */
  readonly extract?: ExtractReplayDeps;
  /** What replays DICOM posts kept as dead letters (`DICOM`, `DICOM-JSON`); without it they are not replayed. */
  readonly dicom?: DicomReplayDeps;
}

/**
 * Who may read, replay and discard dead letters: a client of role `admin` that acts for no
 * member institution (the community's information centre). HIS, LIS, platform and auditor
 * clients may not, whatever their scopes.
 */
export function canManageDeadLetters(auth: Pick<AuthInfo, 'role' | 'institution'> | undefined): boolean {
  return auth?.role === 'admin' && !auth.institution;
}

function contextOf(req: FastifyRequest): RequestContext {
  const a = req.auth;
  return { channel: 'rest', sourceIp: req.ip, requestId: String(req.id), clientId: a?.clientId, institution: a?.institution, userId: a?.userId, scopes: a?.scopes ?? [], role: a?.role };
}

function toJson(d: DeadLetter): DeadLetterJson {
  const opt = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));
  return {
    id: d.id,
    receivedAt: d.receivedAt.toISOString(),
    channel: d.channel,
    ...opt('sender', d.senderId),
    ...opt('remoteAddress', d.remoteAddress),
    ...opt('clientId', d.clientId),
    ...opt('localPort', d.localPort),
    ...opt('messageType', d.messageType),
    ...opt('controlId', d.controlId),
    ...opt('charset', d.charset),
    ackCode: d.ackCode,
    errorCode: d.errorCode,
    errorText: d.errorText,
    ...opt('errorLocation', d.errorLocation),
    status: d.status,
    attempts: d.attempts,
    ...opt('lastAttempt', d.lastAttempt?.toISOString()),
    ...opt('replayResult', d.replayResult),
    ...opt('discardReason', d.discardReason),
    ...opt('discardedBy', d.discardedBy),
  };
}

/**
 * Replays one dead letter: an extract row through the extract loader, a DICOM post through
 * storeDicom, anything else through the HL7 pipeline. Undefined when there is no such dead letter.
 */
async function replayOne(opts: IngestRoutesOptions, id: number): Promise<ReplayResultJson | undefined> {
  const d = await getDeadLetter(opts.db, id);
  if (!d) return undefined;
  if (d.status !== 'new') throw new GatewayError('GW_ERR_CONFLICT', `Dead letter ${id} is ${d.status}; only new dead letters are replayed`, { expression: 'status' });
  if (opts.dicom && isDicomDeadLetter(d)) {
    const r = await replayDicomPost(opts.dicom, d);
    const done = r.outcome === 'stored';
    await recordReplay(opts.db, id, { done, text: done ? `stored (${(r.resources ?? []).join(', ')})`.slice(0, 2000) : `${r.errorCode ?? 'error'}: ${r.errorText ?? ''}` });
    return { id, outcome: r.outcome, ...(r.errorCode ? { errorCode: r.errorCode, errorText: r.errorText ?? '' } : {}) };
  }
  if (opts.extract && isExtractDeadLetter(d)) {
    const r = await replayExtractRow(opts.extract, d);
    const done = r.outcome === 'stored';
    await recordReplay(opts.db, id, { done, text: done ? `stored (job ${r.jobId ?? ''})` : `${r.errorCode ?? 'error'}: ${r.errorText ?? ''}` });
    return { id, outcome: r.outcome, ...(r.jobId ? { job: r.jobId } : {}), ...(r.errorCode ? { errorCode: r.errorCode, errorText: r.errorText ?? '' } : {}) };
  }
  const r = await opts.pipeline.replay(id);
  return r && replayJson(id, r);
}

function replayJson(id: number, r: PipelineResult): ReplayResultJson {
  return {
    id,
    outcome: r.outcome,
    ack: r.ack.toString('utf8').replace(/\r/g, '\n').trim(),
    ...(r.failure ? { errorCode: r.failure.errorCode, errorText: r.failure.text } : {}),
  };
}

function idOf(raw: string): number {
  const id = Number(raw);
  if (!/^\d{1,15}$/.test(raw) || !Number.isSafeInteger(id) || id <= 0) throw new GatewayError('GW_ERR_NOT_FOUND', `Dead letter ${raw} not found`, { expression: 'id' });
  return id;
}

function text(v: unknown, name: string, max = 200): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} must be a string of at most ${max} characters`, { expression: name });
  return v;
}

function integer(v: unknown, name: string, min: number, max: number, dflt?: number): number | undefined {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} must be a whole number from ${min} to ${max}`, { expression: name });
  return n;
}

function statusOf(v: unknown): DeadLetterStatus | undefined {
  const s = text(v, 'status');
  if (s !== undefined && !DEAD_LETTER_STATUSES.includes(s as DeadLetterStatus)) {
    throw new GatewayError('GW_ERR_BAD_REQUEST', `status must be one of ${DEAD_LETTER_STATUSES.join(', ')}`, { expression: 'status' });
  }
  return s as DeadLetterStatus | undefined;
}

export async function ingestRoutes(app: FastifyInstance, opts: IngestRoutesOptions): Promise<void> {
  const { pipeline, db } = opts;
  const audit = (req: FastifyRequest, interaction: Interaction, outcome: '0' | '4', resources: string[], extra: { operation?: string; query?: string; outcomeText?: string } = {}) =>
    recordAccess(db, contextOf(req), [{ interaction, outcome, resources, patients: [], ...extra }]);

  /** Refuses (403, audited) any client but the administrator. */
  const admin = async (req: FastifyRequest) => {
    if (canManageDeadLetters(req.auth)) return;
    const message = `Client "${req.auth?.clientId ?? 'unknown'}" may not manage HL7 dead letters (administrator only)`;
    await audit(req, 'operation', '4', [], { operation: 'dead-letters', outcomeText: message });
    throw new GatewayError('GW_ERR_FORBIDDEN', message);
  };

  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(HL7_BODY_TYPES, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post('/hl7v2', { config: { interaction: 'hl7v2' } }, async (req, reply) => {
    if (!Buffer.isBuffer(req.body) || req.body.length === 0) {
      throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', `Post one HL7 v2 message as ${HL7_MEDIA_TYPE} (or text/plain)`, { expression: 'Content-Type' });
    }
    const result = await pipeline.handleMessage(req.body, { channel: 'http', remoteAddress: req.ip, clientId: req.auth?.clientId });
    // One response: the application ACK, or the accept ACK when that is all the sender asked for.
    const ack = result.acks.at(-1);
    if (!ack) return reply.code(204).send();
    return reply.code(200).header('content-type', HL7_MEDIA_TYPE).send(ack);
  });

  app.get('/dead-letters', { config: { interaction: 'dead-letter-search' } }, async (req): Promise<DeadLetterPage> => {
    await admin(req);
    const q = req.query as Record<keyof ListQuery, unknown>;
    const filter = { sender: text(q.sender, 'sender'), error: text(q.error, 'error'), status: statusOf(q.status), messageType: text(q.type, 'type') };
    const count = integer(q._count, '_count', 1, MAX_COUNT, 50) as number;
    const page = await listDeadLetters(db, filter, count, integer(q._after, '_after', 1, Number.MAX_SAFE_INTEGER));
    await audit(req, 'search-type', '0', page.items.map((d) => `DeadLetter/${d.id}`), { query: 'dead-letters' });
    let next: string | undefined;
    if (page.next !== undefined) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries({ ...filter, type: filter.messageType, messageType: undefined })) if (v !== undefined) params.set(k, v);
      params.set('_count', String(count));
      params.set('_after', String(page.next));
      next = `${req.routeOptions.url ?? ''}?${params.toString()}`;
    }
    return { items: page.items.map(toJson), ...(next ? { next } : {}) };
  });

  app.get<{ Params: { id: string } }>('/dead-letters/:id', { config: { interaction: 'dead-letter-read' } }, async (req): Promise<DeadLetterDetail> => {
    await admin(req);
    const d = await getDeadLetter(db, idOf(req.params.id));
    if (!d) throw new GatewayError('GW_ERR_NOT_FOUND', `Dead letter ${req.params.id} not found`, { expression: 'id' });
    await audit(req, 'read', '0', [`DeadLetter/${d.id}`]);
    return { ...toJson(d), message: decodeRaw(d.raw, d.charset), raw: d.raw.toString('base64') };
  });

  app.post<{ Params: { id: string } }>('/dead-letters/:id/$replay', { config: { interaction: 'dead-letter-replay' } }, async (req): Promise<ReplayResultJson> => {
    await admin(req);
    const id = idOf(req.params.id);
    const r = await replayOne(opts, id);
    if (!r) throw new GatewayError('GW_ERR_NOT_FOUND', `Dead letter ${id} not found`, { expression: 'id' });
    await audit(req, 'operation', '0', [`DeadLetter/${id}`], { operation: '$replay' });
    return r;
  });

  app.post('/dead-letters/$replay', { config: { interaction: 'dead-letter-replay' } }, async (req): Promise<components['schemas']['ReplayBatch']> => {
    await admin(req);
    const body = (req.body ?? {}) as Record<keyof ReplayFilter, unknown>;
    if (typeof body !== 'object' || Array.isArray(body)) throw new GatewayError('GW_ERR_BAD_REQUEST', 'The body is a JSON object: { sender?, error?, type?, limit? }');
    const unknown = Object.keys(body).filter((k) => !['sender', 'error', 'type', 'limit'].includes(k));
    if (unknown.length) throw new GatewayError('GW_ERR_BAD_REQUEST', `Unknown filter field "${unknown[0]}"`, { expression: unknown[0] });
    const filter = { sender: text(body.sender, 'sender'), error: text(body.error, 'error'), messageType: text(body.type, 'type'), status: 'new' as const };
    const ids = await matchingIds(db, filter, integer(body.limit, 'limit', 1, MAX_COUNT, 100) as number);
    const results: ReplayResultJson[] = [];
    for (const id of ids) {
      try {
        const r = await replayOne(opts, id);
        if (r) results.push(r);
      } catch (e) {
        // Replayed or discarded meanwhile by another request, or one that cannot be replayed here: skip it.
        if (!(e instanceof GatewayError && (e.code === 'GW_ERR_CONFLICT' || e.code === 'GW_ERR_BUSINESS_RULE'))) throw e;
      }
    }
    await audit(req, 'operation', '0', ids.map((id) => `DeadLetter/${id}`), { operation: '$replay' });
    return { results };
  });

  if (opts.feeds) {
    const feeds = opts.feeds;
    app.get('/feeds', { config: { interaction: 'feed-statistics' } }, async (req): Promise<components['schemas']['FeedReport']> => {
      await admin(req);
      const hours = integer((req.query as { hours?: unknown }).hours, 'hours', 1, 24 * 31, 24) as number;
      const report = await feedStatistics(db, feeds.senders, { hours, staleMinutes: feeds.staleMinutes, institutionOfClient: feeds.institutionOfClient });
      await audit(req, 'search-type', '0', [], { query: `feeds?hours=${hours}` });
      return report;
    });
  }

  app.post<{ Params: { id: string } }>('/dead-letters/:id/$discard', { config: { interaction: 'dead-letter-discard' } }, async (req): Promise<DeadLetterJson> => {
    await admin(req);
    const id = idOf(req.params.id);
    const reason = (req.body as { reason?: unknown } | undefined)?.reason;
    if (typeof reason !== 'string' || reason.trim().length < 3 || reason.length > 1000) {
      throw new GatewayError('GW_ERR_BAD_REQUEST', 'A discard needs a reason: { "reason": "<3 to 1000 characters>" }', { expression: 'reason' });
    }
    const result = await db.tx(async (q) => {
      const d = await getDeadLetter(q, id);
      if (!d) throw new GatewayError('GW_ERR_NOT_FOUND', `Dead letter ${id} not found`, { expression: 'id' });
      if (!(await discardDeadLetter(q, id, reason.trim(), req.auth?.clientId ?? 'unknown'))) {
        throw new GatewayError('GW_ERR_CONFLICT', `Dead letter ${id} is ${d.status}; only new dead letters are discarded`, { expression: 'status' });
      }
      // Audited in the same transaction as the discard: no discard without its record.
      await recordAccess(q, contextOf(req), [{ interaction: 'operation', operation: '$discard', outcome: '0', outcomeText: reason.trim().slice(0, 500), resources: [`DeadLetter/${id}`], patients: [] }]);
      return (await getDeadLetter(q, id)) as DeadLetter;
    });
    return toJson(result);
  });
}
