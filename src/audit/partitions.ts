/**
 * Monthly partitions of audit_event (UTC months): created ahead of time, and dropped whole when
 * older than the retention period. Before a partition is dropped, the last link it holds of each
 * chain becomes that chain's anchor, so verification of what remains still starts from a known
 * hash. Records are never deleted one by one.
 */
import type { Db } from '../store/index.js';

export interface PartitionOptions {
  /** Months of audit records kept (AUDIT_RETENTION_MONTHS); whole months older are dropped. */
  readonly retentionMonths: number;
  /** Months after the current one that get their partition now (default 2). */
  readonly monthsAhead?: number;
  /** The current time (default: now). */
  readonly now?: Date;
}

export interface PartitionReport {
  /** Partitions created, by name (`audit_event_2026_11`). */
  readonly created: string[];
  /** Partitions dropped by retention. */
  readonly dropped: string[];
}

/** First day of the month `offset` months from the month of `at`, in UTC, as YYYY-MM-DD. */
function monthStart(at: Date, offset: number): string {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + offset, 1)).toISOString().slice(0, 10);
}

function partitionName(month: string): string {
  return `audit_event_${month.slice(0, 4)}_${month.slice(5, 7)}`;
}

const PARTITION_RE = /^audit_event_(\d{4})_(\d{2})$/;

/**
 * Creates the partitions of the current month and the next ones, and of any month the default
 * partition holds rows of; then drops the partitions of months entirely older than the
 * retention period. Idempotent; call at start and periodically (daily is plenty).
 */
export async function maintainAuditPartitions(db: Db, options: PartitionOptions): Promise<PartitionReport> {
  const now = options.now ?? new Date();
  const ahead = options.monthsAhead ?? 2;
  const months = new Set<string>();
  for (let i = 0; i <= ahead; i++) months.add(monthStart(now, i));
  const { rows: stray } = await db.query<{ m: string }>(
    `SELECT DISTINCT to_char(date_trunc('month', recorded AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS m FROM audit_event_default`,
  );
  for (const r of stray) months.add(r.m);
  const created: string[] = [];
  for (const m of [...months].sort()) {
    const made = await db.tx(async (q) => (await q.query<{ made: boolean }>('SELECT audit_event_add_partition($1::date) AS made', [m])).rows[0].made);
    if (made) created.push(partitionName(m));
  }
  const dropped = await dropExpiredPartitions(db, monthStart(now, -options.retentionMonths));
  return { created, dropped };
}

/** Drops, oldest first, the month partitions that end on or before cutoff (YYYY-MM-DD, a month start). */
async function dropExpiredPartitions(db: Db, cutoff: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'audit_event'::regclass ORDER BY c.relname`,
  );
  const dropped: string[] = [];
  for (const { name } of rows) {
    const m = PARTITION_RE.exec(name);
    if (!m || `${m[1]}-${m[2]}-01` >= cutoff) continue;
    await db.tx(async (q) => {
      await q.query('SELECT pg_advisory_xact_lock(7262002)');
      if ((await q.query('SELECT to_regclass($1) AS t', [name])).rows[0]?.t === null) return;
      // Recorded never decreases along a chain, so the partition holds a contiguous stretch
      // of each chain and its last link there is the newest record of that chain dropped.
      await q.query(
        `UPDATE audit_chain h SET anchor_seq = l.seq, anchor_hash = l.hash
           FROM (SELECT DISTINCT ON (chain) chain, seq, hash FROM "${name}" ORDER BY chain, seq DESC) l
          WHERE h.chain = l.chain AND l.seq > h.anchor_seq`,
      );
      await q.query(`DROP TABLE "${name}"`);
      dropped.push(name);
    });
  }
  return dropped;
}

/** The month partitions present, oldest first, with their row counts (monitoring and tests). */
export async function listAuditPartitions(db: Db): Promise<{ name: string; rows: number }[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'audit_event'::regclass ORDER BY c.relname`,
  );
  const out: { name: string; rows: number }[] = [];
  for (const { name } of rows) {
    if (!PARTITION_RE.test(name) && name !== 'audit_event_default') continue;
    const n = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${name}"`);
    out.push({ name, rows: n.rows[0].n });
  }
  return out;
}
