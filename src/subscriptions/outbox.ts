/**
 * The part of subscriptions that runs inside a write's database transaction (write-path.ts):
 * - before the versions are stored, a written Subscription is checked (criteria, topic, channel,
 *   endpoint, the owner's rights) and its delivery state recorded; the HMAC secret is taken out
 *   of the resource;
 * - after they are stored, each written resource is matched against the live subscriptions of
 *   its type, and every match is appended to subscription_event, in write order, without a
 *   number (numbered after commit, state.ts). Commit makes resource and notification durable
 *   together; rollback drops both.
 */
import type { Resource, Subscription } from '@medplum/fhirtypes';
import { evalFhirPathTyped, toTypedValue, type TypedValue } from '@medplum/core';
import type { Queryable } from '../store/index.js';
import { matchesById, parseCriteria, queryFromString, type ParsedSearch } from '../store/search/index.js';
import { assertCan, can } from '../auth/policy.js';
import type { RequestContext } from '../fhir/context.js';
import { GatewayError } from '../errors.js';
import { parseSubscription, takeSecret, type Criteria, type SpecOptions, type SubscriptionSpec } from './spec.js';
import type { Interaction, Topic } from './topics.js';

/** A write about to be stored (resource undefined for a delete). */
export interface PendingWrite {
  readonly type: string;
  readonly id: string;
  readonly method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly resource?: Resource;
}

/** A write just stored in this transaction. */
export interface StoredWrite {
  readonly type: string;
  readonly id: string;
  readonly versionId: number;
  readonly action: Interaction;
  readonly resource?: Resource;
  readonly previous?: Resource;
}

interface LiveRow {
  id: string;
  spec: string;
  owner_client: string | null;
  owner_institution: string | null;
  owner_scopes: string[] | null;
}

const parsedCache = new Map<string, ParsedSearch>();

function parsed(c: Criteria): ParsedSearch {
  const key = `${c.type}?${c.query}`;
  let ps = parsedCache.get(key);
  if (!ps) {
    ps = parseCriteria(c.type, queryFromString(c.query));
    if (parsedCache.size > 5000) parsedCache.clear();
    parsedCache.set(key, ps);
  }
  return ps;
}

function truthy(result: TypedValue[]): boolean {
  if (result.length === 0) return false;
  if (result.length === 1 && typeof result[0].value === 'boolean') return result[0].value;
  return true;
}

export class SubscriptionOutbox {
  private readonly listeners = new Set<() => void>();

  constructor(private readonly opts: SpecOptions) {}

  /** Transactions that queued something to deliver (their listeners are told once each). */
  private readonly toDeliver = new WeakSet<Queryable>();

  /**
   * Calls `fn` after each committed write transaction of this process that appended events or
   * changed a Subscription; returns the unsubscribe.
   */
  onCommitted(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Wakes the listeners when q's transaction commits. */
  private deliverAfterCommit(q: Queryable): void {
    if (this.toDeliver.has(q) || !q.onCommit) return;
    this.toDeliver.add(q);
    q.onCommit(() => {
      for (const fn of this.listeners) fn();
    });
  }

  get topics(): ReadonlyMap<string, Topic> {
    return this.opts.topics;
  }

  /** Checks each Subscription of the transaction and records its delivery state. */
  async beforeStore(q: Queryable, ctx: RequestContext, writes: readonly PendingWrite[]): Promise<void> {
    for (const w of writes) {
      if (w.type !== 'Subscription') continue;
      this.deliverAfterCommit(q);
      if (w.method === 'DELETE') {
        await q.query('DELETE FROM subscription_state WHERE id = $1', [w.id]);
        await q.query('DELETE FROM subscription_counter WHERE id = $1', [w.id]);
        await q.query('DELETE FROM subscription_event WHERE subscription_id = $1', [w.id]);
        continue;
      }
      const sub = w.resource as Subscription;
      const secret = takeSecret(sub);
      const spec = parseSubscription(sub, this.opts);
      const client = ctx.scopes !== undefined;
      if (client) {
        // A subscription delivers what its owner could search and read, nothing more.
        for (const t of spec.resourceTypes) {
          assertCan(ctx, t, 's');
          assertCan(ctx, t, 'r');
        }
        // The server runs the status: a client may ask for delivery (requested) or stop it (off).
        sub.status = sub.status === 'off' ? 'off' : 'requested';
        delete sub.error;
      }
      const status = sub.status ?? 'requested';
      if (!['requested', 'active', 'error', 'off'].includes(status)) {
        throw new GatewayError('GW_ERR_BAD_REQUEST', `Subscription.status "${status}" is not requested, active, error or off`, { expression: 'Subscription.status' });
      }
      await q.query(
        `INSERT INTO subscription_state (id, status, resource_types, channel, heartbeat_seconds, spec, secret, owner_client, owner_institution, owner_scopes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET
           status = EXCLUDED.status, resource_types = EXCLUDED.resource_types, channel = EXCLUDED.channel,
           heartbeat_seconds = EXCLUDED.heartbeat_seconds, spec = EXCLUDED.spec,
           secret = COALESCE(EXCLUDED.secret, subscription_state.secret),
           owner_client = CASE WHEN $11 THEN EXCLUDED.owner_client ELSE subscription_state.owner_client END,
           owner_institution = CASE WHEN $11 THEN EXCLUDED.owner_institution ELSE subscription_state.owner_institution END,
           owner_scopes = CASE WHEN $11 THEN EXCLUDED.owner_scopes ELSE subscription_state.owner_scopes END,
           failures = CASE WHEN $11 THEN 0 ELSE subscription_state.failures END,
           next_attempt = CASE WHEN $11 THEN now() ELSE subscription_state.next_attempt END,
           last_error = CASE WHEN $11 THEN NULL ELSE subscription_state.last_error END`,
        [
          w.id,
          status,
          spec.resourceTypes,
          spec.channel,
          spec.heartbeatSeconds ?? null,
          JSON.stringify(spec),
          secret ?? null,
          client ? (ctx.clientId ?? null) : null,
          client ? (ctx.institution ?? null) : null,
          client ? [...(ctx.scopes ?? [])] : null,
          client,
        ],
      );
      await q.query('INSERT INTO subscription_counter (id) VALUES ($1) ON CONFLICT (id) DO NOTHING', [w.id]);
    }
  }

  /** Appends one event per (subscription, written resource) that matches, to be numbered after commit. */
  async afterStore(q: Queryable, writes: readonly StoredWrite[], at: string): Promise<void> {
    if (writes.length === 0) return;
    const types = [...new Set(writes.map((w) => w.type))];
    const { rows } = await q.query<LiveRow>(
      `SELECT id, spec, owner_client, owner_institution, owner_scopes FROM subscription_state
        WHERE status <> 'off' AND resource_types && $1::text[]`,
      [types],
    );
    if (rows.length === 0) return;
    const matched = new Map<string, StoredWrite[]>();
    for (const row of rows.sort((a, b) => (a.id < b.id ? -1 : 1))) {
      const spec = JSON.parse(row.spec) as SubscriptionSpec;
      const owner: RequestContext = { channel: 'subscription', clientId: row.owner_client ?? undefined, institution: row.owner_institution ?? undefined, scopes: row.owner_scopes ?? undefined };
      for (const w of writes) {
        if (!spec.resourceTypes.includes(w.type) || !can(owner, w.type, 'r')) continue;
        let hit: boolean;
        try {
          hit = await this.matches(q, spec, w);
        } catch (e) {
          if (!(e instanceof GatewayError)) throw e;
          // Criteria that no longer parse (a search parameter was removed): the subscription is
          // put in error where its owner sees it, and the write goes on.
          await q.query(`UPDATE subscription_state SET status = 'error', last_error = $2 WHERE id = $1`, [row.id, `criteria no longer valid: ${e.message}`]);
          break;
        }
        if (hit) matched.set(row.id, [...(matched.get(row.id) ?? []), w]);
      }
    }
    if (matched.size === 0) return;
    // The events, unnumbered: they are numbered after commit (state.ts numberEvents), so that
    // writes matching one subscription do not commit one after another. FOR KEY SHARE on the
    // counter rows does not block the numbering or other writes; it makes a deletion of the
    // subscription wait for this transaction (and then delete its events too), and a write after
    // that deletion append nothing.
    const hits = [...matched].flatMap(([id, ws]) => ws.map((w) => ({ id, w })));
    await q.query(
      `INSERT INTO subscription_event (subscription_id, created, type, id, version_id, action)
       SELECT x.s, $1::timestamptz, x.t, x.i, x.v, x.a
         FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[]) WITH ORDINALITY AS x(s, t, i, v, a, n)
         JOIN (SELECT id FROM subscription_counter WHERE id = ANY($2::text[]) ORDER BY id FOR KEY SHARE) c ON c.id = x.s
        ORDER BY x.n`,
      [at, hits.map((h) => h.id), hits.map((h) => h.w.type), hits.map((h) => h.w.id), hits.map((h) => h.w.versionId), hits.map((h) => h.w.action)],
    );
    this.deliverAfterCommit(q);
  }

  private async matches(q: Queryable, spec: SubscriptionSpec, w: StoredWrite): Promise<boolean> {
    if (spec.kind === 'criteria') {
      // R4 criteria-based subscriptions notify of versions that match; a deletion has none.
      return w.action !== 'delete' && spec.criteria !== undefined && matchesById(q, parsed(spec.criteria), w.id);
    }
    const topic = spec.topic ? this.opts.topics.get(spec.topic) : undefined;
    if (!topic) return false;
    let triggered = false;
    for (const tr of topic.triggers) {
      if (tr.resource !== w.type || !tr.interactions.has(w.action)) continue;
      if (tr.fhirPath) {
        const focus = w.resource ?? w.previous;
        const vars: Record<string, TypedValue> = {
          '%current': toTypedValue(w.resource ?? {}),
          '%previous': toTypedValue(w.previous ?? {}),
        };
        if (!truthy(evalFhirPathTyped(tr.fhirPath, [toTypedValue(focus)], vars))) continue;
      }
      if (tr.current) {
        const passes = w.action === 'delete' ? tr.resultForDelete === 'test-passes' : await matchesById(q, tr.current, w.id);
        if (!passes) continue;
      }
      triggered = true;
      break;
    }
    if (!triggered) return false;
    for (const f of spec.filters) {
      if (f.type !== w.type) continue;
      // Filters are searches over the stored version; a deletion has none to match.
      if (w.action === 'delete' || !(await matchesById(q, parsed(f), w.id))) return false;
    }
    return true;
  }
}
