/**
 * Retention of the gateway's working tables, run at start and then daily beside the audit
 * partition maintenance. What is pruned has done its job and is old:
 * - subscription events delivered to their subscriber, older than the retention (kept that long
 *   for `$events`); an event not yet delivered (numbered or not) is never pruned, however old;
 * - HL7 v2 control ids seen longer ago than the duplicate window (a sender that resends a
 *   message after that is stored again);
 * - dead letters replayed or discarded longer ago than their retention; a dead letter still
 *   waiting (status `new`) is never pruned.
 * The audit trail has its own retention (whole monthly partitions, audit/partitions.ts).
 */
import type { Db } from '../store/index.js';

export interface RetentionOptions {
  /** Days a delivered subscription event is kept. */
  readonly subscriptionEventDays: number;
  /** Days an HL7 v2 message control id is remembered for duplicate detection. */
  readonly hl7ProcessedDays: number;
  /** Days a replayed or discarded dead letter is kept. */
  readonly deadLetterDays: number;
  /** The present (tests). */
  readonly now?: Date;
}

export interface RetentionReport {
  readonly subscriptionEvents: number;
  readonly hl7Processed: number;
  readonly deadLetters: number;
}

const DAY_MS = 86_400_000;

/** Deletes what is past retention; returns how many rows of each kind went. */
export async function pruneWorkingTables(db: Db, o: RetentionOptions): Promise<RetentionReport> {
  const now = (o.now ?? new Date()).getTime();
  const before = (days: number) => new Date(now - days * DAY_MS).toISOString();
  const count = async (sql: string, params: unknown[]) => (await db.query<{ n: number }>(`WITH d AS (${sql} RETURNING 1) SELECT count(*)::int AS n FROM d`, params)).rows[0].n;
  const subscriptionEvents = await count(
    `DELETE FROM subscription_event e USING subscription_state s
      WHERE s.id = e.subscription_id AND e.event_number <= s.delivered_through AND e.created < $1::timestamptz`,
    [before(o.subscriptionEventDays)],
  );
  const hl7Processed = await count('DELETE FROM hl7_processed WHERE processed_at < $1::timestamptz', [before(o.hl7ProcessedDays)]);
  const deadLetters = await count(
    `DELETE FROM dead_letter WHERE status <> 'new' AND closed_at < $1::timestamptz`,
    [before(o.deadLetterDays)],
  );
  return { subscriptionEvents, hl7Processed, deadLetters };
}
