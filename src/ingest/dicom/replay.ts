/**
 * Replay of a DICOM post kept as a dead letter (type `DICOM` or `DICOM-JSON`), e.g. after the
 * identity linking or the database that failed it is back, or a fix of the gateway: its bytes are
 * read again as first posted (with the query it came with, `retrieveUrl=`), for the institution of
 * the client that posted it, and stored through the same path as a post (storeDicom). Instances
 * stored meanwhile by later posts merge as usual. A post refused again stays open with the new
 * reason; a failure of the gateway or the database is thrown (the replay is tried again later).
 */
import { GatewayError, isGatewayError } from '../../errors.js';
import type { RequestContext } from '../../fhir/index.js';
import type { DeadLetter } from '../dead-letters.js';
import { DICOM_DEAD_LETTER_TYPES, recordsOf } from './routes.js';
import { storeDicom, type DicomStoreDeps } from './store.js';

/** The client a replay acts as: its institution and scopes, as a token of it would carry. */
export interface DicomReplayClient {
  readonly institution?: string;
  readonly scopes: readonly string[];
  readonly role?: string;
}

export interface DicomReplayDeps extends DicomStoreDeps {
  readonly client: (clientId: string) => DicomReplayClient | undefined;
}

export interface DicomReplay {
  readonly outcome: 'stored' | 'rejected';
  /** The resources written, as `Type/id`. */
  readonly resources?: readonly string[];
  readonly errorCode?: string;
  readonly errorText?: string;
}

const MEDIA_TYPE_OF = new Map(Object.entries(DICOM_DEAD_LETTER_TYPES).map(([media, type]) => [type as string, media]));

export function isDicomDeadLetter(d: DeadLetter): boolean {
  return MEDIA_TYPE_OF.has(d.messageType ?? '');
}

/** Stores the post of the dead letter again; says whether it is stored now. */
export async function replayDicomPost(deps: DicomReplayDeps, d: DeadLetter): Promise<DicomReplay> {
  const client = d.clientId ? deps.client(d.clientId) : undefined;
  if (!client?.institution) {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `Dead letter ${d.id} was posted by client "${d.clientId ?? 'unknown'}", which acts for no member institution now; it cannot be replayed`, { expression: 'clientId' });
  }
  const ctx: RequestContext & { institution: string } = {
    channel: 'dicom',
    requestId: `replay-${d.id}`,
    clientId: d.clientId,
    institution: client.institution,
    scopes: client.scopes,
    role: client.role,
    ...(d.remoteAddress ? { sourceIp: d.remoteAddress } : {}),
  };
  const retrieveUrl = new URLSearchParams(d.requestQuery ?? '').get('retrieveUrl') || undefined;
  try {
    const response = await storeDicom(deps, recordsOf(MEDIA_TYPE_OF.get(d.messageType ?? '') as string, d.raw), ctx, retrieveUrl);
    const resources = (response.entry ?? []).map((e) => e.response?.location?.replace(/\/_history\/.*$/, '')).filter((l): l is string => !!l);
    return { outcome: 'stored', resources };
  } catch (e) {
    if (!isGatewayError(e) || e.statusCode >= 500) throw e;
    return { outcome: 'rejected', errorCode: e.code, errorText: e.message };
  }
}
