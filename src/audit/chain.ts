/**
 * The hash chains of the audit trail. Events are appended to one of N independent chains; each
 * record stores H(prev_hash, its position, its columns, its content), so that a record changed
 * or removed in the database breaks its chain. The head of each chain (last seq and hash) is a
 * row of audit_chain, locked FOR UPDATE by the appending transaction until it commits: one
 * transaction holds at most one chain, and picks a chain no other transaction holds (SKIP
 * LOCKED), so appends of concurrent transactions do not wait for each other while fewer of them
 * than chains are in flight.
 */
import { createHash, getHashes, randomUUID } from 'node:crypto';
import type { Db, Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { GatewayError } from '../errors.js';
import { buildAuditEvent, eventColumns, type AccessRecord } from './event.js';

export type HashAlgorithm = 'sm3' | 'sha256';

/** Hash of the chain's origin: the prev_hash of its first record. */
export const GENESIS_HASH = '0'.repeat(64);

export function sm3Available(): boolean {
  return getHashes().includes('sm3');
}

/** `auto`: SM3 (GB/T 32905) when the runtime's OpenSSL has it, else SHA-256. */
export function resolveHashAlgorithm(wanted: 'auto' | HashAlgorithm): HashAlgorithm {
  if (wanted === 'sha256') return 'sha256';
  if (sm3Available()) return 'sm3';
  if (wanted === 'sm3') throw new Error('AUDIT_HASH=sm3 but this runtime has no SM3 digest (crypto.getHashes() lacks sm3); use sha256');
  return 'sha256';
}

/** One stored link of a chain: the columns the hash covers. */
export interface ChainRecord {
  readonly chain: number;
  readonly seq: number;
  readonly alg: string;
  readonly id: string;
  /** ISO instant with milliseconds. */
  readonly recorded: string;
  readonly action: string;
  readonly subtype: string;
  readonly outcome: string;
  readonly clientId: string | null;
  readonly institution: string | null;
  readonly userId: string | null;
  readonly sourceIp: string | null;
  readonly purpose: string | null;
  readonly patientRefs: readonly string[];
  readonly entityRefs: readonly string[];
  readonly content: string;
}

/** H(prev_hash bytes ‖ JSON of position and columns ‖ LF ‖ content), in lower-case hex. */
export function linkHash(prevHash: string, r: ChainRecord): string {
  const h = createHash(r.alg);
  h.update(Buffer.from(prevHash, 'hex'));
  h.update(
    JSON.stringify([
      r.chain,
      r.seq,
      r.alg,
      r.id,
      r.recorded,
      r.action,
      r.subtype,
      r.outcome,
      r.clientId,
      r.institution,
      r.userId,
      r.sourceIp,
      r.purpose,
      r.patientRefs,
      r.entityRefs,
    ]),
  );
  h.update('\n');
  h.update(r.content);
  return h.digest('hex');
}

export interface ChainSettings {
  /** Number of chains appended to (AUDIT_CHAINS). */
  readonly chains: number;
  readonly alg: HashAlgorithm;
}

/**
 * Makes chains 0..n-1 the active ones, hashed with alg from now on. Chains beyond n stay (and
 * are verified) but receive no more events. Run at start, before serving.
 */
export async function configureAuditChains(db: Db, settings: ChainSettings): Promise<void> {
  if (!Number.isSafeInteger(settings.chains) || settings.chains < 1) throw new Error(`audit chains must be a positive integer, not ${settings.chains}`);
  createHash(settings.alg);
  await db.tx(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock(7262003)');
    await q.query(
      `INSERT INTO audit_chain (chain, hash, anchor_hash)
       SELECT c, $2, $2 FROM generate_series(0, $1::int - 1) AS c
       ON CONFLICT (chain) DO NOTHING`,
      [settings.chains, GENESIS_HASH],
    );
    await q.query('UPDATE audit_chain SET active = chain < $1, alg = $2 WHERE active IS DISTINCT FROM (chain < $1) OR alg <> $2', [settings.chains, settings.alg]);
  });
}

interface HeadRow {
  chain: number;
  seq: number;
  hash: string;
  alg: string;
  last_recorded: Date | string | null;
  now: Date | string;
}

const HEAD_COLUMNS = 'chain, seq, hash, alg, last_recorded, clock_timestamp() AS now';

/** The chain each open transaction holds, so that a second append in it takes the same one. */
const heldChain = new WeakMap<Queryable, number>();

async function lockHead(q: Queryable): Promise<HeadRow> {
  const held = heldChain.get(q);
  if (held !== undefined) {
    const { rows } = await q.query<HeadRow>(`SELECT ${HEAD_COLUMNS} FROM audit_chain WHERE chain = $1 FOR UPDATE`, [held]);
    if (rows[0]) return rows[0];
  }
  // A chain that no other transaction holds, in random order so that chains grow evenly.
  let { rows } = await q.query<HeadRow>(`SELECT ${HEAD_COLUMNS} FROM audit_chain WHERE active ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED`);
  if (!rows[0]) {
    // Every chain is held: wait for one (this transaction holds none, so no deadlock).
    ({ rows } = await q.query<HeadRow>(
      `SELECT ${HEAD_COLUMNS} FROM audit_chain WHERE chain = (SELECT chain FROM audit_chain WHERE active ORDER BY random() LIMIT 1) FOR UPDATE`,
    ));
  }
  if (!rows[0]) throw new GatewayError('GW_ERR_INTERNAL', 'No active audit chain: the audit_chain table is empty');
  heldChain.set(q, rows[0].chain);
  return rows[0];
}

function isDb(q: Queryable): q is Db {
  return typeof (q as Partial<Db>).tx === 'function';
}

export interface AppendOptions {
  /**
   * Time of the events instead of the database clock (loading or replaying old records). Within
   * a chain, time never goes backwards: an earlier value is raised to the chain's last one.
   */
  readonly recorded?: Date;
}

/** ids of the appended events, in order. */
export interface AppendResult {
  readonly chain: number;
  readonly firstSeq: number;
  readonly ids: string[];
}

interface Entry {
  readonly ctx: RequestContext;
  readonly records: readonly AccessRecord[];
}

/**
 * Appends the AuditEvents of records to one chain, in q's transaction: one head lock, one
 * multi-row insert with the head update. Given the Db itself (no open transaction), the records
 * are appended in a transaction of the gateway's own, which concurrent callers share (see
 * GroupAppender); the call resolves once that transaction has committed.
 */
export async function appendAuditEvents(q: Queryable, ctx: RequestContext, records: readonly AccessRecord[], options: AppendOptions = {}): Promise<AppendResult | undefined> {
  if (records.length === 0) return undefined;
  if (isDb(q)) {
    if (options.recorded || q.joined) return q.tx(async (t) => (await appendEntries(t, [{ ctx, records }], options))[0]);
    let appender = appenders.get(q);
    if (!appender) appenders.set(q, (appender = new GroupAppender(q)));
    return appender.append({ ctx, records });
  }
  return (await appendEntries(q, [{ ctx, records }], options))[0];
}

/** Appends the records of several callers, in order, to one chain in q's transaction. */
async function appendEntries(q: Queryable, entries: readonly Entry[], options: AppendOptions): Promise<AppendResult[]> {
  const head = await lockHead(q);
  // The database clock, read under the lock: recorded never decreases along a chain, so that a
  // month partition holds a contiguous stretch of every chain (retention cuts chains cleanly).
  const at = Math.max(
    (options.recorded ?? new Date(head.now)).getTime(),
    head.last_recorded === null ? 0 : new Date(head.last_recorded).getTime(),
  );
  const recorded = new Date(at).toISOString();
  const alg = head.alg;
  let prev = head.hash;
  let seq = head.seq;
  const results: AppendResult[] = [];
  const rows = entries.flatMap(({ ctx, records }) => {
    const shared = {
      chain: head.chain,
      alg,
      recorded,
      clientId: ctx.clientId ?? null,
      institution: ctx.institution ?? null,
      userId: ctx.userId ?? null,
      sourceIp: ctx.sourceIp ?? null,
      purpose: ctx.purposeOfUse ?? 'TREAT',
    };
    const ids: string[] = [];
    results.push({ chain: head.chain, firstSeq: seq + 1, ids });
    return records.map((rec) => {
      const id = randomUUID();
      ids.push(id);
      const content = JSON.stringify({ ...buildAuditEvent(ctx, rec, recorded), id });
      const link: ChainRecord = { ...shared, ...eventColumns(rec), seq: ++seq, id, content };
      const hash = linkHash(prev, link);
      const row = {
        id,
        seq: link.seq,
        action: link.action,
        subtype: link.subtype,
        outcome: link.outcome,
        client_id: link.clientId,
        institution: link.institution,
        user_id: link.userId,
        source_ip: link.sourceIp,
        purpose: link.purpose,
        patient_refs: link.patientRefs,
        entity_refs: link.entityRefs,
        prev_hash: prev,
        hash,
        content,
      };
      prev = hash;
      return row;
    });
  });
  const last = rows[rows.length - 1];
  await q.query(
    `WITH ins AS (
       INSERT INTO audit_event (recorded, id, chain, seq, action, subtype, outcome, client_id, institution, user_id, source_ip, purpose,
                                patient_refs, entity_refs, alg, prev_hash, hash, content)
       SELECT $2::timestamptz, x.id, $3, x.seq, x.action, x.subtype, x.outcome, x.client_id, x.institution, x.user_id, x.source_ip, x.purpose,
              x.patient_refs, x.entity_refs, $4, x.prev_hash, x.hash, x.content
         FROM jsonb_to_recordset($1::jsonb) AS x(id text, seq bigint, action text, subtype text, outcome text, client_id text, institution text,
              user_id text, source_ip text, purpose text, patient_refs text[], entity_refs text[], prev_hash text, hash text, content text)
     )
     UPDATE audit_chain SET seq = $5, hash = $6, last_recorded = $2::timestamptz WHERE chain = $3`,
    [JSON.stringify(rows), recorded, head.chain, alg, last.seq, last.hash],
  );
  return results;
}

/** Callers whose records wait together for the next group transaction. */
interface Waiting extends Entry {
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/** Group transactions of one Db in flight at once (each holds its own chain). */
const GROUP_TRANSACTIONS = 2;
/** Most callers in one group transaction. */
const GROUP_SIZE = 256;

/**
 * Group commit of the audit records of accesses that write nothing (reads, searches, refusals):
 * a caller's records join the next group transaction, which starts as soon as fewer than
 * GROUP_TRANSACTIONS are running. Alone, a caller waits for its own transaction as before; under
 * load, one transaction (one head lock, one insert, one commit) carries many callers' records,
 * and each caller still answers only after the commit that holds its records.
 */
class GroupAppender {
  private readonly waiting: Waiting[] = [];
  private running = 0;

  constructor(private readonly db: Db) {}

  append(entry: Entry): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...entry, resolve, reject });
      if (this.running < GROUP_TRANSACTIONS) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running++;
    try {
      while (this.waiting.length > 0) {
        const group = this.waiting.splice(0, GROUP_SIZE);
        try {
          const results = await this.db.tx((t) => appendEntries(t, group, {}));
          group.forEach((w, i) => w.resolve(results[i]));
        } catch (e) {
          for (const w of group) w.reject(e);
        }
      }
    } finally {
      this.running--;
    }
  }
}

const appenders = new WeakMap<Db, GroupAppender>();
