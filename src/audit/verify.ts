/**
 * Verification of the audit chains: walks every chain in sequence order from its anchor (the
 * last link dropped by retention, or the origin), in batches so that memory stays bounded,
 * recomputing each hash and checking each link against the previous one and the chain head.
 */
import type { Queryable } from '../store/index.js';
import { linkHash, type ChainRecord } from './chain.js';

export type BreakReason = 'hash-mismatch' | 'missing-record' | 'prev-hash-mismatch';

export interface BrokenLink {
  readonly chain: number;
  readonly seq: number;
  /** The record where the break shows; absent when records at the end of the chain are missing. */
  readonly id?: string;
  readonly reason: BreakReason;
}

export interface ChainReport {
  readonly chain: number;
  readonly active: boolean;
  readonly alg: string;
  /** Verification started after this link (0: the chain's origin). */
  readonly anchorSeq: number;
  /** The head when verification started: records after it were not checked. */
  readonly headSeq: number;
  readonly headHash: string;
  readonly checked: number;
  readonly broken?: BrokenLink;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Records checked. */
  readonly checked: number;
  /** Chains walked. */
  readonly chains: number;
  /** The first break, of the lowest-numbered broken chain. */
  readonly firstBroken?: BrokenLink;
  readonly reports: ChainReport[];
}

export interface VerifyOptions {
  /** Records read per query (default 2000). */
  readonly batchSize?: number;
  /** Only these chains. */
  readonly chains?: readonly number[];
}

interface HeadRow {
  chain: number;
  active: boolean;
  alg: string;
  seq: number;
  hash: string;
  anchor_seq: number;
  anchor_hash: string;
}

interface EventRow {
  recorded: Date | string;
  id: string;
  chain: number;
  seq: number;
  action: string;
  subtype: string;
  outcome: string;
  client_id: string | null;
  institution: string | null;
  user_id: string | null;
  source_ip: string | null;
  purpose: string | null;
  patient_refs: string[];
  entity_refs: string[];
  alg: string;
  prev_hash: string;
  hash: string;
  content: string;
}

function toRecord(r: EventRow): ChainRecord {
  return {
    chain: r.chain,
    seq: Number(r.seq),
    alg: r.alg,
    id: r.id,
    recorded: new Date(r.recorded).toISOString(),
    action: r.action,
    subtype: r.subtype,
    outcome: r.outcome,
    clientId: r.client_id,
    institution: r.institution,
    userId: r.user_id,
    sourceIp: r.source_ip,
    purpose: r.purpose,
    patientRefs: r.patient_refs,
    entityRefs: r.entity_refs,
    content: r.content,
  };
}

/** Checks one row against the expected position and previous hash; the reason it fails, if it does. */
function checkLink(row: EventRow, expectedSeq: number, prev: string): BreakReason | undefined {
  const seq = Number(row.seq);
  if (seq > expectedSeq) return 'missing-record';
  if (seq < expectedSeq || row.prev_hash !== prev) return 'prev-hash-mismatch';
  try {
    if (linkHash(prev, toRecord(row)) !== row.hash) return 'hash-mismatch';
  } catch {
    // An algorithm name changed into one the runtime lacks.
    return 'hash-mismatch';
  }
  return undefined;
}

async function verifyChain(q: Queryable, head: HeadRow, batchSize: number): Promise<ChainReport> {
  const report = { chain: head.chain, active: head.active, alg: head.alg, anchorSeq: Number(head.anchor_seq), headSeq: Number(head.seq), headHash: head.hash };
  let expected = report.anchorSeq + 1;
  let prev = head.anchor_hash;
  let checked = 0;
  let after = report.anchorSeq;
  for (;;) {
    const { rows } = await q.query<EventRow>(
      `SELECT recorded, id, chain, seq, action, subtype, outcome, client_id, institution, user_id, source_ip, purpose,
              patient_refs, entity_refs, alg, prev_hash, hash, content
         FROM audit_event WHERE chain = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
      [head.chain, after, report.headSeq, batchSize],
    );
    for (const row of rows) {
      const reason = checkLink(row, expected, prev);
      if (reason) return { ...report, checked, broken: { chain: head.chain, seq: Number(row.seq), id: row.id, reason } };
      checked++;
      prev = row.hash;
      expected++;
    }
    if (rows.length < batchSize) break;
    after = Number(rows[rows.length - 1].seq);
  }
  // Records missing at the end, or a head that does not match the last record.
  if (expected - 1 !== report.headSeq) return { ...report, checked, broken: { chain: head.chain, seq: expected, reason: 'missing-record' } };
  if (prev !== report.headHash) return { ...report, checked, broken: { chain: head.chain, seq: report.headSeq, reason: 'hash-mismatch' } };
  return { ...report, checked };
}

/** Walks every chain (or the chosen ones) and reports the first broken link of each. */
export async function verifyAuditChains(q: Queryable, options: VerifyOptions = {}): Promise<VerifyResult> {
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 2000, 50_000));
  const { rows: heads } = await q.query<HeadRow>('SELECT chain, active, alg, seq, hash, anchor_seq, anchor_hash FROM audit_chain ORDER BY chain');
  const wanted = options.chains ? new Set(options.chains) : undefined;
  const reports: ChainReport[] = [];
  for (const head of heads) {
    if (wanted && !wanted.has(head.chain)) continue;
    reports.push(await verifyChain(q, head, batchSize));
  }
  const firstBroken = reports.find((r) => r.broken)?.broken;
  return {
    ok: firstBroken === undefined,
    checked: reports.reduce((n, r) => n + r.checked, 0),
    chains: reports.length,
    ...(firstBroken ? { firstBroken } : {}),
    reports,
  };
}
