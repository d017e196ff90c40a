/**
 * Replay of a DICOM post kept as a dead letter (type `DICOM` or `DICOM-JSON`), e.g. after the
 * identity linking or the database that failed it is back, or a fix of the gateway: its bytes are
 * read again as first posted (with the query it came with, `retrieveUrl=`), for the institution of
 * the client that posted it, and stored through the same path as a post (storeDicom). Instances
 * stored meanwhile by later posts merge as usual. A post refused again stays open with the new
 * reason; a failure of the gateway or the database is thrown (the replay is tried again later).
 */
import { isGatewayError } from '../../errors.js';
import { replayContext, type DeadLetter, type ReplayClient } from '../dead-letters.js';
import { DICOM_DEAD_LETTER_TYPES, recordsOf } from './routes.js';
import { storeDicom, type DicomStoreDeps } from './store.js';

export interface DicomReplayDeps extends DicomStoreDeps {
  readonly client: (clientId: string) => ReplayClient | undefined;
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
  const ctx = replayContext(d, d.clientId ? deps.client(d.clientId) : undefined, 'dicom');
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
