/**
 * Replay of a rejected extract row (dead letter of type `EXTRACT <kind>`), e.g. after its kind's
 * column declarations or the terminology maps were fixed: the row is loaded again as a one-row
 * extract (a CSV row is kept with its header line; an NDJSON row is one line), as a job of its
 * own, for the institution of the client that first posted it, through the same loader and write
 * path. A row rejected again stays open with the new reason; nothing new is kept.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { GatewayError } from '../../errors.js';
import { replayContext, type DeadLetter, type ReplayClient } from '../dead-letters.js';
import type { ExtractMapping } from './mappings.js';
import { createJob } from './jobs.js';
import { runExtract, type ExtractDeps, type Rejected } from './run.js';

export const EXTRACT_TYPE_PREFIX = 'EXTRACT ';

export interface ExtractReplayDeps extends ExtractDeps {
  readonly mappings: ReadonlyMap<string, ExtractMapping>;
  readonly client: (clientId: string) => ReplayClient | undefined;
}

export interface RowReplay {
  readonly outcome: 'stored' | 'rejected';
  readonly jobId?: string;
  readonly errorCode?: string;
  readonly errorText?: string;
}

export function isExtractDeadLetter(d: DeadLetter): boolean {
  return d.messageType?.startsWith(EXTRACT_TYPE_PREFIX) ?? false;
}

/** Loads the row of the dead letter again; says whether it is stored now. */
export async function replayExtractRow(deps: ExtractReplayDeps, d: DeadLetter): Promise<RowReplay> {
  const kind = (d.messageType ?? '').slice(EXTRACT_TYPE_PREFIX.length);
  const mapping = deps.mappings.get(kind);
  if (!mapping) return { outcome: 'rejected', errorCode: 'GW_ERR_NOT_FOUND', errorText: `No extract kind "${kind}" is declared any more` };
  const ctx = replayContext(d, d.clientId ? deps.client(d.clientId) : undefined, 'extract');
  const text = d.raw.toString('utf8');
  // A CSV row is kept after its header line; an NDJSON row is a single line.
  const format = text.includes('\n') ? 'csv' : 'ndjson';
  const job = await createJob(deps.db, { id: randomUUID(), kind, format, charset: 'UTF-8', institution: ctx.institution, clientId: d.clientId });
  const rejected: Rejected[] = [];
  try {
    const done = await runExtract(deps, { job, mapping, ctx, onReject: (r) => rejected.push(r) }, Readable.from([text]), format, 'UTF-8');
    if (done.rowsStored === 1) return { outcome: 'stored', jobId: job.id };
  } catch (e) {
    if (!(e instanceof GatewayError) || e.statusCode >= 500) throw e;
    return { outcome: 'rejected', jobId: job.id, errorCode: e.code, errorText: e.message };
  }
  const r = rejected[0];
  return { outcome: 'rejected', jobId: job.id, errorCode: r?.code ?? 'GW_ERR_BAD_REQUEST', errorText: r ? `${r.text}${r.field ? ` (${r.field})` : ''}` : 'the row was not stored' };
}
