/**
 * Delivery state of subscriptions in the database: numbering committed events, finding due work,
 * owning a subscription while delivering (a lease that a crashed instance loses), recording each
 * attempt, and reading numbered events. The database stays the source of truth: a queue (in
 * process or Redis) only says which subscription to look at.
 */
import type { Db, Queryable } from '../store/index.js';
import type { Resource } from '@medplum/fhirtypes';
import type { SubscriptionSpec } from './spec.js';
import type { NotifiedEvent } from './notification.js';

export interface StateRow {
  id: string;
  status: 'requested' | 'active' | 'error' | 'off';
  channel: string;
  spec: string;
  secret: string | null;
  heartbeat_seconds: number | null;
  owner_client: string | null;
  events_count: number;
  delivered_through: number;
  failures: number;
  delivered_total: number;
  failed_total: number;
  next_attempt: string;
  last_attempt: string | null;
  last_delivered: string | null;
  last_sent: string | null;
  last_error: string | null;
  created: string;
}

export interface SubscriptionState extends Omit<StateRow, 'spec'> {
  readonly spec: SubscriptionSpec;
}

export interface EventRow {
  event_number: number;
  created: string;
  type: string;
  id: string;
  version_id: number;
  action: 'create' | 'update' | 'delete';
  /** The version's JSON, when asked for. */
  content?: string | null;
}

function toState(r: StateRow): SubscriptionState {
  return {
    ...r,
    spec: JSON.parse(r.spec) as SubscriptionSpec,
    events_count: Number(r.events_count),
    delivered_through: Number(r.delivered_through),
    delivered_total: Number(r.delivered_total),
    failed_total: Number(r.failed_total),
  };
}

/** Events that a committed write appended and that are not numbered yet, per subscription (SQL). */
const UNNUMBERED = 'SELECT subscription_id AS id, count(*) AS pending FROM subscription_event WHERE event_number IS NULL GROUP BY subscription_id';

/**
 * Numbers the committed, unnumbered events of subscription `id`: the next numbers of its counter,
 * in sequence order, and the counter moved on, in one short transaction under the counter row's
 * lock. Whoever reads the events (the dispatcher holding the lease, the websocket hub, $status and
 * $events) numbers first; the lock, not the lease, keeps two of them from numbering the same events.
 * FOR NO KEY UPDATE does not wait for the writes appending events (they hold FOR KEY SHARE on the
 * counter row, see outbox.ts): only numberers and the deletion of the subscription wait.
 * Returns the subscription's event count (events-since-subscription-start), or undefined when it
 * has no counter (deleted).
 */
export async function numberEvents(db: Db, id: string): Promise<number | undefined> {
  const { rows } = await db.query<{ events_count: string; pending: boolean }>(
    `SELECT events_count, EXISTS (SELECT 1 FROM subscription_event e WHERE e.subscription_id = c.id AND e.event_number IS NULL) AS pending
       FROM subscription_counter c WHERE c.id = $1`,
    [id],
  );
  if (!rows[0]) return undefined;
  let count = Number(rows[0].events_count);
  if (!rows[0].pending) return count;
  // In batches, so that a long backlog (a subscription in error for days) never makes one long
  // statement.
  for (;;) {
    const batch = await numberBatch(db, id);
    if (batch === undefined) return undefined;
    count = batch.count;
    if (batch.numbered < NUMBER_BATCH) return count;
  }
}

const NUMBER_BATCH = 10_000;

async function numberBatch(db: Db, id: string): Promise<{ count: number; numbered: number } | undefined> {
  return db.tx(async (q) => {
    // The lock first, in a statement of its own: the numbering statement after it then reads a
    // snapshot taken once the previous numberer committed.
    const locked = await q.query<{ events_count: string }>('SELECT events_count FROM subscription_counter WHERE id = $1 FOR NO KEY UPDATE', [id]);
    if (!locked.rows[0]) return undefined;
    const from = Number(locked.rows[0].events_count);
    const { rows: after } = await q.query<{ events_count: string }>(
      `WITH todo AS (
         SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM subscription_event
          WHERE subscription_id = $1 AND event_number IS NULL ORDER BY seq LIMIT $3),
       numbered AS (
         UPDATE subscription_event e SET event_number = $2::bigint + todo.n FROM todo WHERE e.seq = todo.seq AND e.event_number IS NULL RETURNING 1)
       UPDATE subscription_counter SET events_count = $2::bigint + (SELECT count(*) FROM numbered)
        WHERE id = $1
        RETURNING events_count`,
      [id, from, NUMBER_BATCH],
    );
    const count = Number(after[0]?.events_count ?? from);
    return { count, numbered: count - from };
  });
}

/** The subscription's state, after numbering its committed events. */
export async function readState(db: Db, id: string): Promise<SubscriptionState | undefined> {
  await numberEvents(db, id);
  const { rows } = await db.query<StateRow>('SELECT s.*, c.events_count FROM subscription_state s JOIN subscription_counter c USING (id) WHERE s.id = $1', [id]);
  return rows[0] ? toState(rows[0]) : undefined;
}

/**
 * An event row as a notification event; `carry`: whether the version's content goes with it
 * (full-resource content the reader may see; never for a deletion).
 */
export function notifiedEvent(r: EventRow, carry: boolean): NotifiedEvent {
  return {
    eventNumber: r.event_number,
    timestamp: r.created,
    type: r.type,
    id: r.id,
    versionId: r.version_id,
    action: r.action,
    resource: carry && r.content && r.action !== 'delete' ? (JSON.parse(r.content) as Resource) : undefined,
  };
}

/**
 * Marks up to `limit` rest-hook subscriptions that have something to send now (a handshake,
 * undelivered events, a heartbeat due) as queued under `token`, and returns their ids. Only one
 * instance queues a subscription at a time: the others skip it while its lease runs.
 */
export async function claimDue(q: Queryable, token: string, leaseMs: number, defaultHeartbeat: number, limit: number): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `UPDATE subscription_state s SET lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond'
      WHERE s.id IN (
        SELECT d.id FROM subscription_state d JOIN subscription_counter c USING (id)
         WHERE d.status IN ('requested', 'active') AND d.channel = 'rest-hook' AND d.next_attempt <= now()
           AND (d.lease_until IS NULL OR d.lease_until < now())
           AND (d.status = 'requested' OR c.events_count > d.delivered_through
                OR EXISTS (SELECT 1 FROM subscription_event e WHERE e.subscription_id = d.id AND e.event_number IS NULL)
                OR (COALESCE(d.heartbeat_seconds, $3) > 0
                    AND COALESCE(d.last_sent, d.created) + COALESCE(d.heartbeat_seconds, $3) * interval '1 second' <= now()))
         ORDER BY d.next_attempt LIMIT $4
         FOR UPDATE OF d SKIP LOCKED)
      RETURNING s.id`,
    [token, leaseMs, defaultHeartbeat, limit],
  );
  return rows.map((r) => r.id);
}

/**
 * Takes the lease of a subscription for delivery: granted when it was queued under `queued`, or
 * when the previous owner's lease ran out (a crashed instance). Returns the state, or undefined
 * when another live owner has it.
 */
export async function takeLease(q: Queryable, id: string, queued: string, me: string, leaseMs: number): Promise<SubscriptionState | undefined> {
  const { rows } = await q.query<StateRow>(
    `WITH u AS (
       UPDATE subscription_state SET lease_owner = $3, lease_until = now() + $4 * interval '1 millisecond'
        WHERE id = $1 AND (lease_owner = $2 OR lease_owner = $3 OR lease_until IS NULL OR lease_until < now())
        RETURNING *)
     SELECT u.*, c.events_count FROM u JOIN subscription_counter c USING (id)`,
    [id, queued, me, leaseMs],
  );
  return rows[0] ? toState(rows[0]) : undefined;
}

export async function releaseLease(q: Queryable, id: string, me: string): Promise<void> {
  await q.query('UPDATE subscription_state SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2', [id, me]);
}

/**
 * The events after `after` (up to `until`), in order, at most `limit`; with `content`, each with
 * the version it names (null for a deletion).
 */
export async function eventsAfter(q: Queryable, id: string, after: number, limit: number, until?: number, content = false): Promise<EventRow[]> {
  const { rows } = await q.query<EventRow>(
    `SELECT e.event_number, e.created, e.type, e.id, e.version_id, e.action${content ? ', v.content' : ''}
       FROM subscription_event e
       ${content ? 'LEFT JOIN resource r ON r.type = e.type AND r.id = e.id LEFT JOIN resource_version v ON v.rid = r.rid AND v.version_id = e.version_id' : ''}
      WHERE e.subscription_id = $1 AND e.event_number > $2 AND ($4::bigint IS NULL OR e.event_number <= $4)
      ORDER BY e.event_number LIMIT $3`,
    [id, after, limit, until ?? null],
  );
  return rows.map((r) => ({ ...r, event_number: Number(r.event_number), created: new Date(r.created).toISOString() }));
}

/**
 * Records a successful send (events up to `through`, or a handshake/heartbeat when through is
 * undefined) and renews the lease. False when the lease was lost: stop delivering.
 */
export async function recordSuccess(q: Queryable, id: string, me: string, leaseMs: number, sent: { through?: number; count: number; activate?: boolean }): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE subscription_state SET
        delivered_through = GREATEST(delivered_through, COALESCE($3::bigint, delivered_through)),
        delivered_total = delivered_total + $4, failures = 0, last_error = NULL,
        last_attempt = now(), last_sent = now(),
        last_delivered = CASE WHEN $4 > 0 THEN now() ELSE last_delivered END,
        status = CASE WHEN $5 AND status = 'requested' THEN 'active' ELSE status END,
        lease_until = now() + $6 * interval '1 millisecond'
      WHERE id = $1 AND lease_owner = $2
      RETURNING id`,
    [id, me, sent.through ?? null, sent.count, sent.activate ?? false, leaseMs],
  );
  return rows.length > 0;
}

/**
 * Records a failed attempt: the next one after `delayMs`; at `maxFailures` consecutive failures
 * the subscription goes to error. Releases the lease. Returns the new status and failure count.
 */
export async function recordFailure(
  q: Queryable,
  id: string,
  me: string,
  error: string,
  delayMs: number,
  maxFailures: number,
): Promise<{ status: string; failures: number } | undefined> {
  const { rows } = await q.query<{ status: string; failures: number }>(
    `UPDATE subscription_state SET
        failures = failures + 1, failed_total = failed_total + 1, last_error = $3, last_attempt = now(),
        next_attempt = now() + $4 * interval '1 millisecond',
        status = CASE WHEN failures + 1 >= $5 THEN 'error' ELSE status END,
        lease_owner = NULL, lease_until = NULL
      WHERE id = $1 AND lease_owner = $2
      RETURNING status, failures`,
    [id, me, error.slice(0, 1000), delayMs, maxFailures],
  );
  return rows[0];
}

/**
 * The state of each subscription of `where` (SQL over s, the state, and c, the counter), with
 * `pending`: its events committed and not numbered yet, which are recorded events too.
 */
export function stateWithPendingSql(where: string): string {
  return `SELECT s.*, c.events_count, COALESCE(p.pending, 0) AS pending
            FROM subscription_state s JOIN subscription_counter c USING (id) LEFT JOIN (${UNNUMBERED}) p USING (id)
           WHERE ${where}`;
}

/** Counts for /metrics: subscriptions by status, and events not yet delivered (numbered or not). */
export async function stateCounts(q: Queryable): Promise<{ byStatus: Record<string, number>; backlog: number }> {
  const { rows } = await q.query<{ status: string; n: number; backlog: number }>(
    `SELECT status, count(*)::int AS n, COALESCE(sum(events_count + pending - delivered_through), 0)::bigint AS backlog
       FROM (${stateWithPendingSql('true')}) s GROUP BY status`,
  );
  const byStatus: Record<string, number> = {};
  let backlog = 0;
  for (const r of rows) {
    byStatus[r.status] = r.n;
    if (r.status !== 'off') backlog += Number(r.backlog);
  }
  return { byStatus, backlog };
}
