/**
 * The dead-letter store: every HL7 v2 message that was not stored (refused, unmappable, or the
 * database unavailable) is kept here with its raw bytes, for inspection and replay after a fix.
 * Never dropped: when the database itself is down, the dead letter goes to a local spool
 * directory first (one file per message, written atomically) and is moved into the table by
 * `DeadLetterSpool.drain` when the database answers again.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queryable } from '../store/index.js';
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../fhir/index.js';

export type DeadLetterStatus = 'new' | 'replayed' | 'discarded';
export const DEAD_LETTER_STATUSES: readonly DeadLetterStatus[] = ['new', 'replayed', 'discarded'];

export interface DeadLetterInput {
  readonly receivedAt: Date;
  readonly raw: Buffer;
  /** Character set the message was (or would have been) decoded with. */
  readonly charset?: string;
  readonly senderId?: string;
  readonly remoteAddress?: string;
  readonly channel: 'mllp' | 'http';
  /** OAuth client of an HTTP post, local port of an MLLP connection: a replay is checked as the original was. */
  readonly clientId?: string;
  readonly localPort?: number;
  /** MSH-9 as `ORU^R01`. */
  readonly messageType?: string;
  /** MSH-10. */
  readonly controlId?: string;
  /** The ACK code the sender was answered: AE or AR. */
  readonly ackCode: 'AE' | 'AR';
  /** Why: `unknown-sender`, `parse-error`, `mapping-error`, `storage-unavailable`, a `GW_ERR_*` code … */
  readonly errorCode: string;
  readonly errorText: string;
  /** Where, as `PID-3[2].1` (HL7) or a FHIR expression. */
  readonly errorLocation?: string;
  /** Query string of an HTTP post (a DICOM post's `retrieveUrl=`), given again on replay. */
  readonly requestQuery?: string;
}

export interface DeadLetter extends DeadLetterInput {
  readonly id: number;
  readonly status: DeadLetterStatus;
  readonly attempts: number;
  readonly lastAttempt?: Date;
  readonly replayResult?: string;
  readonly discardReason?: string;
  readonly discardedBy?: string;
}

interface Row {
  id: number;
  received_at: Date | string;
  raw: Uint8Array;
  charset: string | null;
  sender_id: string | null;
  remote_address: string | null;
  channel: 'mllp' | 'http';
  client_id: string | null;
  local_port: number | null;
  message_type: string | null;
  control_id: string | null;
  ack_code: 'AE' | 'AR';
  error_code: string;
  error_text: string;
  error_location: string | null;
  status: DeadLetterStatus;
  attempts: number;
  last_attempt: Date | string | null;
  replay_result: string | null;
  discard_reason: string | null;
  discarded_by: string | null;
  request_query: string | null;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function fromRow(r: Row): DeadLetter {
  return {
    id: Number(r.id),
    receivedAt: new Date(r.received_at),
    raw: Buffer.from(r.raw),
    charset: opt(r.charset),
    senderId: opt(r.sender_id),
    remoteAddress: opt(r.remote_address),
    channel: r.channel,
    clientId: opt(r.client_id),
    localPort: r.local_port === null ? undefined : Number(r.local_port),
    messageType: opt(r.message_type),
    controlId: opt(r.control_id),
    ackCode: r.ack_code,
    errorCode: r.error_code,
    errorText: r.error_text,
    errorLocation: opt(r.error_location),
    status: r.status,
    attempts: r.attempts,
    lastAttempt: r.last_attempt === null ? undefined : new Date(r.last_attempt),
    replayResult: opt(r.replay_result),
    discardReason: opt(r.discard_reason),
    discardedBy: opt(r.discarded_by),
    requestQuery: opt(r.request_query),
  };
}

/** Inserts a dead letter; with spoolId, at most once per spool file. Returns its id (undefined when already there). */
export async function insertDeadLetter(q: Queryable, d: DeadLetterInput, spoolId?: string): Promise<number | undefined> {
  const { rows } = await q.query<{ id: number }>(
    `INSERT INTO dead_letter (received_at, raw, charset, sender_id, remote_address, channel, client_id, local_port, message_type,
                              control_id, ack_code, error_code, error_text, error_location, spool_id, request_query)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT (spool_id) DO NOTHING RETURNING id`,
    [
      d.receivedAt.toISOString(),
      d.raw,
      d.charset ?? null,
      d.senderId ?? null,
      d.remoteAddress ?? null,
      d.channel,
      d.clientId ?? null,
      d.localPort ?? null,
      d.messageType ?? null,
      d.controlId ?? null,
      d.ackCode,
      d.errorCode,
      d.errorText.slice(0, 2000),
      d.errorLocation ?? null,
      spoolId ?? null,
      d.requestQuery ?? null,
    ],
  );
  return rows[0] ? Number(rows[0].id) : undefined;
}

export async function getDeadLetter(q: Queryable, id: number): Promise<DeadLetter | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const { rows } = await q.query<Row>('SELECT * FROM dead_letter WHERE id = $1', [id]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

export interface DeadLetterFilter {
  readonly sender?: string;
  /** Error code. */
  readonly error?: string;
  readonly status?: DeadLetterStatus;
  /** Message type (`ORU^R01`). */
  readonly messageType?: string;
}

export interface DeadLetterPage {
  readonly items: DeadLetter[];
  /** Id to pass as `after` for the next (older) page; undefined on the last page. */
  readonly next?: number;
}

function whereOf(f: DeadLetterFilter, params: unknown[]): string {
  const clauses: string[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    clauses.push(sql.replace('?', `$${params.length}`));
  };
  if (f.sender !== undefined) add('sender_id = ?', f.sender);
  if (f.error !== undefined) add('error_code = ?', f.error);
  if (f.status !== undefined) add('status = ?', f.status);
  if (f.messageType !== undefined) add('message_type = ?', f.messageType);
  return clauses.length ? clauses.join(' AND ') : 'true';
}

/** Newest first; `after` is the id of the last item of the previous page. */
export async function listDeadLetters(q: Queryable, f: DeadLetterFilter, count: number, after?: number): Promise<DeadLetterPage> {
  const params: unknown[] = [];
  let where = whereOf(f, params);
  if (after !== undefined) {
    params.push(after);
    where += ` AND id < $${params.length}`;
  }
  params.push(count + 1);
  const { rows } = await q.query<Row>(`SELECT * FROM dead_letter WHERE ${where} ORDER BY id DESC LIMIT $${params.length}`, params);
  const items = rows.slice(0, count).map(fromRow);
  return { items, next: rows.length > count ? items[items.length - 1].id : undefined };
}

/** Ids of the dead letters matching a filter, oldest first (bulk replay), at most `limit`. */
export async function matchingIds(q: Queryable, f: DeadLetterFilter, limit: number): Promise<number[]> {
  const params: unknown[] = [];
  const where = whereOf(f, params);
  params.push(limit);
  const { rows } = await q.query<{ id: number }>(`SELECT id FROM dead_letter WHERE ${where} ORDER BY id LIMIT $${params.length}`, params);
  return rows.map((r) => Number(r.id));
}

/** Records one replay attempt; `done` marks it replayed (stored, or found already stored). */
export async function recordReplay(q: Queryable, id: number, result: { done: boolean; text: string }): Promise<void> {
  await q.query(
    `UPDATE dead_letter SET attempts = attempts + 1, last_attempt = now(), replay_result = $2,
            status = CASE WHEN $3::boolean THEN 'replayed' ELSE status END,
            closed_at = CASE WHEN $3::boolean THEN now() ELSE closed_at END
      WHERE id = $1`,
    [id, result.text.slice(0, 2000), result.done],
  );
}

/**
 * Marks the open dead letters of a message as replayed once the message itself is stored (a
 * resend by the sender, or a replay): run in the transaction that stores it.
 */
export async function settleDeadLetters(q: Queryable, senderId: string, controlId: string, text: string): Promise<void> {
  await q.query(
    `UPDATE dead_letter SET status = 'replayed', replay_result = $3, closed_at = now()
      WHERE sender_id = $1 AND control_id = $2 AND status = 'new'`,
    [senderId, controlId, text],
  );
}

/** Discards an open dead letter. False when it is not open (already replayed or discarded). */
export async function discardDeadLetter(q: Queryable, id: number, reason: string, by: string): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE dead_letter SET status = 'discarded', discard_reason = $2, discarded_by = $3, closed_at = now()
      WHERE id = $1 AND status = 'new' RETURNING id`,
    [id, reason, by],
  );
  return rows.length > 0;
}

// ---- local spool, for when the database is down ----

interface SpoolFile extends Omit<DeadLetterInput, 'raw' | 'receivedAt'> {
  readonly receivedAt: string;
  readonly raw: string;
}

export class DeadLetterSpool {
  constructor(readonly dir: string) {}

  /** Writes a dead letter to the spool durably (written, synced, then renamed into place). */
  async write(d: DeadLetterInput): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const id = `${d.receivedAt.toISOString().replace(/[:.]/g, '')}-${randomUUID()}`;
    const body: SpoolFile = { ...d, receivedAt: d.receivedAt.toISOString(), raw: d.raw.toString('base64') };
    const tmp = join(this.dir, `.${id}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(body));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, `${id}.json`));
    return id;
  }

  /** Ids of the spooled dead letters, oldest first. */
  async pending(): Promise<string[]> {
    try {
      return (await readdir(this.dir))
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -5))
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /**
   * Moves every spooled dead letter into the table, each at most once (by spool id), and
   * deletes its file only after the insert committed. Stops at the first database error, leaving
   * the rest for the next drain. Returns how many were moved.
   */
  async drain(insert: (d: DeadLetterInput, spoolId: string) => Promise<unknown>): Promise<number> {
    let moved = 0;
    for (const id of await this.pending()) {
      const file = join(this.dir, `${id}.json`);
      let body: SpoolFile;
      try {
        body = JSON.parse(await readFile(file, 'utf8')) as SpoolFile;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // drained by a concurrent drain
        throw e;
      }
      await insert({ ...body, receivedAt: new Date(body.receivedAt), raw: Buffer.from(body.raw, 'base64') }, id);
      await unlink(file).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      moved++;
    }
    return moved;
  }
}

/** The client a replay acts as: its institution and scopes, as a token of it would carry. */
export interface ReplayClient {
  readonly institution?: string;
  readonly scopes: readonly string[];
  readonly role?: string;
}

/**
 * The request a replay runs as: the client that posted the dead letter, with the institution,
 * scopes and role it has now, from the address it posted from. Refused when that client acts for
 * no member institution any more.
 */
export function replayContext(d: DeadLetter, client: ReplayClient | undefined, channel: string): RequestContext & { institution: string } {
  if (!client?.institution) {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `Dead letter ${d.id} was posted by client "${d.clientId ?? 'unknown'}", which acts for no member institution now; it cannot be replayed`, { expression: 'clientId' });
  }
  return {
    channel,
    requestId: `replay-${d.id}`,
    clientId: d.clientId,
    institution: client.institution,
    scopes: client.scopes,
    role: client.role,
    ...(d.remoteAddress ? { sourceIp: d.remoteAddress } : {}),
  };
}
