/**
 * Delivery state of subscriptions in the database: finding due work, owning a subscription
 * while delivering (a lease that a crashed instance loses), recording each attempt, and reading
 * numbered events. The database stays the source of truth: a queue (in process or Redis) only
 * says which subscription to look at.
 */
import type { Queryable } from '../store/index.js';
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

export async function readState(q: Queryable, id: string): Promise<SubscriptionState | undefined> {
  const { rows } = await q.query<StateRow>('SELECT s.*, c.events_count FROM subscription_state s JOIN subscription_counter c USING (id) WHERE s.id = $1', [id]);
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

/** Counts for /metrics: subscriptions by status, and events not yet delivered. */
export async function stateCounts(q: Queryable): Promise<{ byStatus: Record<string, number>; backlog: number }> {
  const { rows } = await q.query<{ status: string; n: number; backlog: number }>(
    `SELECT s.status, count(*)::int AS n, COALESCE(sum(c.events_count - s.delivered_through), 0)::bigint AS backlog
       FROM subscription_state s JOIN subscription_counter c USING (id) GROUP BY s.status`,
  );
  const byStatus: Record<string, number> = {};
  let backlog = 0;
  for (const r of rows) {
    byStatus[r.status] = r.n;
    if (r.status !== 'off') backlog += Number(r.backlog);
  }
  return { byStatus, backlog };
}
