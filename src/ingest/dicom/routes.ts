/**
 * POST /ingest/dicom: DICOM study metadata from a PACS, written as ImagingStudy resources for the
 * posting client's own institution.
 *   application/dicom                 one Part 10 file (header read up to the pixel data)
 *   application/dicom+json, application/json
 *                                     DICOM JSON: one dataset or an array (QIDO-RS / WADO-RS metadata)
 * `?retrieveUrl=` gives the PACS's WADO-RS base when the data carries no RetrieveURL (0008,1190).
 * A post that cannot be stored is answered with an OperationOutcome naming the tag and kept in the
 * dead-letter store with its bytes and query (refused content, and failures of the gateway or the
 * database such as identity linking failing), to be replayed after a fix (replay.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import { GatewayError, isGatewayError } from '../../errors.js';
import type { FhirServices, RequestContext } from '../../fhir/index.js';
import type { Db } from '../../store/index.js';
import { recordAccess } from '../../audit/index.js';
import { insertDeadLetter } from '../dead-letters.js';
import type { DicomRecord } from './attributes.js';
import { readDicomJson } from './json.js';
import { readPart10 } from './part10.js';
import { storeDicom } from './store.js';

export const DICOM_MEDIA_TYPE = 'application/dicom';
export const DICOM_JSON_MEDIA_TYPE = 'application/dicom+json';
/** Statuses of a refused post that are kept as dead letters (content errors, not missing rights); failures (5xx) are kept too. */
const KEPT = new Set([400, 409, 412, 422]);
/** Dead-letter types of DICOM posts, by media type. */
export const DICOM_DEAD_LETTER_TYPES = { [DICOM_MEDIA_TYPE]: 'DICOM', [DICOM_JSON_MEDIA_TYPE]: 'DICOM-JSON' } as const;

export interface DicomRoutesOptions {
  readonly db: Db;
  readonly fhir: Pick<FhirServices, 'repository' | 'validator'>;
}

function contextOf(req: FastifyRequest): RequestContext {
  const a = req.auth;
  return { channel: 'dicom', sourceIp: req.ip, requestId: String(req.id), clientId: a?.clientId, institution: a?.institution, userId: a?.userId, scopes: a?.scopes ?? [], role: a?.role, subordinates: a?.subordinates };
}

function mediaType(req: FastifyRequest): string {
  return String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** The records of a post's body, by its media type. */
export function recordsOf(type: string, body: Buffer): DicomRecord[] {
  if (type === DICOM_MEDIA_TYPE) return [readPart10(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)).record];
  let json: unknown;
  try {
    json = sjson.parse(body.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    throw new GatewayError('GW_ERR_INVALID_JSON', `The body is not valid JSON: ${(e as Error).message}`, { expression: 'body' });
  }
  return readDicomJson(json);
}

export async function dicomRoutes(app: FastifyInstance, opts: DicomRoutesOptions): Promise<void> {
  const { db } = opts;
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser([DICOM_MEDIA_TYPE, DICOM_JSON_MEDIA_TYPE, 'application/json'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post<{ Querystring: { retrieveUrl?: string } }>('/dicom', { config: { interaction: 'dicom' } }, async (req, reply) => {
    const ctx = contextOf(req);
    const type = mediaType(req);
    if (!Buffer.isBuffer(req.body) || req.body.length === 0 || ![DICOM_MEDIA_TYPE, DICOM_JSON_MEDIA_TYPE, 'application/json'].includes(type)) {
      throw new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', `Post a Part 10 file as ${DICOM_MEDIA_TYPE} or DICOM JSON as ${DICOM_JSON_MEDIA_TYPE}`, { expression: 'Content-Type' });
    }
    const institution = ctx.institution;
    if (!institution) {
      const message = `Client "${ctx.clientId ?? 'unknown'}" acts for no member institution; DICOM is written only for the posting client's own institution`;
      await recordAccess(db, ctx, [{ interaction: 'operation', operation: 'ingest-dicom', outcome: '4', outcomeText: message, resources: [], patients: [] }]);
      throw new GatewayError('GW_ERR_FORBIDDEN', message);
    }
    const body = req.body;
    const retrieveUrl = typeof req.query.retrieveUrl === 'string' && req.query.retrieveUrl !== '' ? req.query.retrieveUrl : undefined;
    try {
      const records = recordsOf(type, body);
      const response = await storeDicom(opts, records, { ...ctx, institution }, retrieveUrl);
      return reply.code(200).header('content-type', 'application/fhir+json; charset=utf-8').send(response);
    } catch (e) {
      const status = isGatewayError(e) ? e.statusCode : 500;
      const failed = status >= 500;
      if (failed || KEPT.has(status)) {
        const where = isGatewayError(e) ? e.outcome.issue[0]?.expression?.[0] : undefined;
        const dead = {
          receivedAt: new Date(),
          raw: body,
          channel: 'http' as const,
          clientId: ctx.clientId,
          remoteAddress: req.ip,
          messageType: type === DICOM_MEDIA_TYPE ? DICOM_DEAD_LETTER_TYPES[DICOM_MEDIA_TYPE] : DICOM_DEAD_LETTER_TYPES[DICOM_JSON_MEDIA_TYPE],
          // AE: the post itself was not refused, the gateway failed (the sender may resend, or it is replayed).
          ackCode: failed ? ('AE' as const) : ('AR' as const),
          errorCode: isGatewayError(e) ? e.code : 'GW_ERR_INTERNAL',
          errorText: (e as Error).message.slice(0, 2000),
          ...(where ? { errorLocation: where } : {}),
          ...(retrieveUrl ? { requestQuery: new URLSearchParams({ retrieveUrl }).toString() } : {}),
        };
        // With the database down the dead letter cannot be kept either: the 503 tells the PACS to resend.
        await insertDeadLetter(db, dead).catch((err: unknown) => req.log.error({ err }, 'DICOM dead letter not kept'));
      }
      throw e;
    }
  });
}
