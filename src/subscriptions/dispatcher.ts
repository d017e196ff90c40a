/**
 * The dispatcher: moves notifications from the outbox (subscription_event) to the subscribers.
 * Each instance polls for subscriptions with something to send and queues them (in process, or
 * on the Redis stream shared by all instances); whoever takes an item owns that subscription
 * through a lease in the database, numbers its newly committed events (state.ts numberEvents)
 * and sends its events one notification after another, in event order, recording each success
 * before sending the next. A failure schedules a retry with exponential backoff and jitter; too
 * many in a row put the subscription in `error`.
 * At least once: a crash between a send and its record means that notification is sent again,
 * with the same event number.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Subscription } from '@medplum/fhirtypes';
import type { Db } from '../store/index.js';
import { readCurrent } from '../store/index.js';
import type { Logger } from '../logger.js';
import type { Config } from '../config.js';
import type { Repository } from '../fhir/repository.js';
import { SYSTEM_CONTEXT } from '../fhir/context.js';
import { notificationBundle, type NotificationType, type NotifiedEvent } from './notification.js';
import { RestHookSender } from './rest-hook.js';
import { LocalQueue, RedisQueue, type WorkItem, type WorkQueue } from './queue.js';
import { claimDue, eventsAfter, notifiedEvent, numberEvents, readState, recordFailure, recordSuccess, releaseLease, stateCounts, takeLease, type SubscriptionState } from './state.js';

export type DispatcherConfig = Pick<
  Config,
  | 'baseUrl'
  | 'subscriptionAllowedHosts'
  | 'subscriptionMaxFailures'
  | 'subscriptionBackoffBaseMs'
  | 'subscriptionBackoffMaxMs'
  | 'subscriptionTimeoutMs'
  | 'subscriptionHeartbeatSeconds'
  | 'subscriptionPollMs'
  | 'subscriptionLeaseMs'
>;

/** Delivered events are recorded at least this often (count) and this soon (ms). */
const RECORD_EVERY = 50;
const RECORD_MS = 250;

export interface DispatcherDeps {
  readonly db: Db;
  /** Writes the server-managed Subscription.status (active, error) as a new version. */
  readonly repository: Pick<Repository, 'write'>;
  readonly config: DispatcherConfig;
  readonly logger: Logger;
  readonly metrics?: Registry;
  /** With Redis: deliveries go through a stream with a consumer group shared by all instances. */
  readonly redis?: Redis;
  /** Prefix of the Redis keys (default `county-hie:`). */
  readonly redisPrefix?: string;
  /** Deliveries in parallel (different subscriptions) per instance. */
  readonly concurrency?: number;
  /** Commits of this process, to look for work at once instead of at the next poll. */
  readonly commits?: { onCommitted(fn: () => void): () => void };
}

/** Delay before attempt n+1 after n consecutive failures: base·2^(n-1), capped, with jitter in [½, 1]. */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.max(1, Math.round(exp * (0.5 + random() * 0.5)));
}

interface DispatcherMetrics {
  readonly notifications: Counter<'type' | 'result'>;
  readonly events: Counter;
  readonly latency: Histogram;
}

function registerMetrics(registry: Registry, db: Db): DispatcherMetrics {
  const notifications = new Counter({
    name: 'gateway_subscription_notifications_total',
    help: 'Subscription notifications sent, by type (handshake, heartbeat, event-notification) and result (delivered, failed).',
    labelNames: ['type', 'result'] as const,
    registers: [registry],
  });
  const events = new Counter({ name: 'gateway_subscription_events_delivered_total', help: 'Subscription events acknowledged by their subscribers.', registers: [registry] });
  const latency = new Histogram({
    name: 'gateway_subscription_delivery_seconds',
    help: 'Time from the commit of a write to its notification being acknowledged by the subscriber, in seconds.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  new Gauge({
    name: 'gateway_subscriptions',
    help: 'Subscriptions by status.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const { byStatus } = await stateCounts(db);
      this.reset();
      for (const s of ['requested', 'active', 'error', 'off']) this.set({ status: s }, byStatus[s] ?? 0);
    },
  });
  new Gauge({
    name: 'gateway_subscription_backlog_events',
    help: 'Events recorded but not yet acknowledged, over all subscriptions not off.',
    registers: [registry],
    async collect() {
      this.set((await stateCounts(db)).backlog);
    },
  });
  return { notifications, events, latency };
}

export class Dispatcher {
  readonly queue: WorkQueue;
  private readonly sender: RestHookSender;
  private readonly metrics?: DispatcherMetrics;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private again = false;
  private unsubscribe?: () => void;
  private running = false;
  /** Set by kill(): behave as a crashed process (no further database writes, nothing released). */
  private dead = false;
  private readonly aborts = new Set<AbortController>();
  /** Subscriptions this instance is delivering right now. */
  readonly sending = new Set<string>();
  /** This instance's identity in leases and in the consumer group. */
  readonly instance = randomUUID();

  constructor(private readonly deps: DispatcherDeps) {
    const concurrency = deps.concurrency ?? 8;
    this.queue = deps.redis
      ? new RedisQueue({
          redis: deps.redis,
          prefix: deps.redisPrefix ?? 'county-hie:',
          consumer: this.instance,
          claimIdleMs: deps.config.subscriptionLeaseMs,
          concurrency,
          logger: deps.logger,
        })
      : new LocalQueue(concurrency, deps.logger);
    this.sender = new RestHookSender(deps.config.subscriptionAllowedHosts, deps.config.subscriptionTimeoutMs);
    if (deps.metrics) this.metrics = registerMetrics(deps.metrics, deps.db);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.queue.start((item) => this.work(item));
    this.unsubscribe = this.deps.commits?.onCommitted(() => this.wake());
    this.deps.logger.info({ instance: this.instance, queue: this.queue.kind }, 'subscription dispatcher started');
    this.tick();
  }

  private tick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.polling = this.poll()
      .then(() => undefined)
      .catch((err: unknown) => this.deps.logger.warn({ err }, 'subscription poll failed'))
      .finally(() => {
        this.polling = undefined;
        if (!this.running) return;
        if (this.again) {
          this.again = false;
          this.tick();
        } else {
          this.timer = setTimeout(() => this.tick(), this.deps.config.subscriptionPollMs);
        }
      });
  }

  /** Looks for work now (a write committed, a delivery ended): the poll interval is only the fallback. */
  wake(): void {
    if (!this.running) return;
    if (this.polling) this.again = true;
    else this.tick();
  }

  /**
   * An operator's "retry now": the subscription's next delivery attempt is due at once, its
   * failure count starts again, and one in error goes back to requested (handshake first).
   * Returns false when the subscription is off or unknown.
   */
  async retryNow(id: string): Promise<boolean> {
    const { rows } = await this.deps.db.query<{ status: string }>('SELECT status FROM subscription_state WHERE id = $1', [id]);
    const status = rows[0]?.status;
    if (status === undefined || status === 'off') return false;
    if (status === 'error') await this.setResourceStatus(id, 'requested');
    await this.deps.db.query(
      `UPDATE subscription_state SET next_attempt = now(), failures = 0, status = CASE WHEN status = 'error' THEN 'requested' ELSE status END
        WHERE id = $1 AND status <> 'off'`,
      [id],
    );
    this.wake();
    return true;
  }

  /** Graceful: stop polling, finish the notifications being sent, release the leases. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    await this.polling;
    await this.queue.stop();
    await this.sender.close();
  }

  /** Tests: stop as a killed process would, in the middle of whatever it was doing. */
  kill(): void {
    this.dead = true;
    this.running = false;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    for (const a of this.aborts) a.abort();
    void this.queue.stop().catch(() => undefined);
  }

  /** Queues the subscriptions that have something to send now. */
  async poll(): Promise<number> {
    const token = `q:${this.instance}:${randomUUID()}`;
    const ids = await claimDue(this.deps.db, token, this.deps.config.subscriptionLeaseMs, this.deps.config.subscriptionHeartbeatSeconds, 64);
    if (ids.length > 0 && !this.dead) await this.queue.push(ids.map((id) => ({ id, token })));
    return ids.length;
  }

  /** Delivers what one subscription has to send, in order, while holding its lease. */
  private async work(item: WorkItem): Promise<void> {
    if (this.dead) return;
    const me = `d:${this.instance}:${randomUUID()}`;
    const { db, config } = this.deps;
    const state = await takeLease(db, item.id, item.token, me, config.subscriptionLeaseMs);
    if (!state) return;
    this.sending.add(item.id);
    try {
      await this.deliver(state, me);
    } finally {
      this.sending.delete(item.id);
      if (!this.dead) await releaseLease(db, item.id, me);
    }
    // Events committed while this delivery was ending were skipped by polls (leased): look again.
    this.wake();
  }

  private async deliver(state: SubscriptionState, me: string): Promise<void> {
    const { db, config } = this.deps;
    if (state.status !== 'requested' && state.status !== 'active') return;
    if (state.status === 'requested') {
      // The handshake's events-since-subscription-start counts the events committed so far.
      state.events_count = (await numberEvents(db, state.id)) ?? state.events_count;
      if (!(await this.send(state, me, 'handshake', []))) return;
      await this.setResourceStatus(state.id, 'active');
    }
    let through = state.delivered_through;
    let sentAny = false;
    const full = state.spec.content === 'full-resource';
    // Successes are recorded in groups (at most RECORD_EVERY events or RECORD_MS apart), not one
    // database write per notification: after a crash the unrecorded ones are sent again, with
    // their event numbers, which at-least-once allows.
    const unrecorded = { through: 0, count: 0, since: Date.now() };
    const flush = async (): Promise<boolean> => {
      if (unrecorded.count === 0) return true;
      const ok = await recordSuccess(db, state.id, me, config.subscriptionLeaseMs, { through: unrecorded.through, count: unrecorded.count });
      unrecorded.count = 0;
      unrecorded.since = Date.now();
      return ok;
    };
    while (this.running && !this.dead) {
      // The events committed since the last look get their numbers, then are read ahead in
      // batches; maxCount events per notification, each batch in order.
      const count = await numberEvents(db, state.id);
      if (count === undefined || count <= through) break;
      state.events_count = count;
      const rows = await eventsAfter(db, state.id, through, Math.max(100, state.spec.maxCount), undefined, full);
      if (rows.length === 0) break;
      const events = rows.map((r) => notifiedEvent(r, full));
      for (let i = 0; i < events.length && this.running && !this.dead; i += state.spec.maxCount) {
        const chunk = events.slice(i, i + state.spec.maxCount);
        if (!(await this.send(state, me, 'event-notification', chunk, flush))) return;
        through = chunk[chunk.length - 1].eventNumber;
        unrecorded.through = through;
        unrecorded.count += chunk.length;
        sentAny = true;
        if ((unrecorded.count >= RECORD_EVERY || Date.now() - unrecorded.since >= RECORD_MS) && !(await flush())) return;
      }
      if (!(await flush())) return;
    }
    if (!this.dead && !(await flush())) return;
    const heartbeat = state.spec.heartbeatSeconds ?? (config.subscriptionHeartbeatSeconds || undefined);
    if (!sentAny && heartbeat && this.running && !this.dead) {
      const fresh = await readState(db, state.id);
      const last = Date.parse(fresh?.last_sent ?? fresh?.created ?? '');
      if (fresh && fresh.events_count <= fresh.delivered_through && Date.now() - last >= heartbeat * 1000) await this.send(fresh, me, 'heartbeat', []);
    }
  }

  /** One notification; records the outcome. False when delivery must stop (failure or lost lease). */
  /**
   * One notification. Handshakes and heartbeats are recorded at once; event notifications by the
   * caller (in groups). On failure, `beforeFailure` records what was delivered before it, then the
   * failure is recorded. False when delivery must stop (failure or lost lease).
   */
  private async send(
    state: SubscriptionState,
    me: string,
    type: NotificationType,
    events: readonly NotifiedEvent[],
    beforeFailure?: () => Promise<boolean>,
  ): Promise<boolean> {
    const { db, config, logger } = this.deps;
    const spec = state.spec;
    const eventsSinceStart = type === 'event-notification' ? events[events.length - 1].eventNumber : state.events_count;
    const bundle = notificationBundle(
      `${config.baseUrl}/fhir`,
      { subscriptionId: state.id, topic: spec.topic, status: type === 'handshake' ? 'requested' : 'active', eventsSinceStart },
      type,
      spec.content,
      events,
    );
    const body = JSON.stringify(bundle);
    const abort = new AbortController();
    this.aborts.add(abort);
    try {
      await this.sender.send({
        endpoint: spec.endpoint as string,
        body,
        headers: spec.headers,
        secret: state.secret ?? undefined,
        timeoutMs: Math.min(config.subscriptionTimeoutMs, (spec.timeoutSeconds ?? Infinity) * 1000),
        eventNumbers: events.length > 0 ? events.map((e) => e.eventNumber).join(',') : undefined,
        signal: abort.signal,
      });
    } catch (e) {
      if (this.dead) return false;
      await beforeFailure?.();
      const message = (e as Error).message;
      this.metrics?.notifications.inc({ type, result: 'failed' });
      const failures = state.failures + 1;
      const delay = backoffMs(failures, config.subscriptionBackoffBaseMs, config.subscriptionBackoffMaxMs);
      const after = await recordFailure(db, state.id, me, message, delay, config.subscriptionMaxFailures);
      if (after) state.failures = after.failures;
      logger.warn({ subscription: state.id, failures: after?.failures, retryInMs: delay, err: message }, 'subscription notification failed');
      if (after?.status === 'error') await this.setResourceStatus(state.id, 'error', message);
      return false;
    } finally {
      this.aborts.delete(abort);
    }
    if (this.dead) return false;
    this.metrics?.notifications.inc({ type, result: 'delivered' });
    if (events.length > 0) {
      this.metrics?.events.inc(events.length);
      const now = Date.now();
      for (const e of events) this.metrics?.latency.observe((now - Date.parse(e.timestamp)) / 1000);
    }
    state.failures = 0;
    if (type === 'event-notification') return true;
    return recordSuccess(db, state.id, me, config.subscriptionLeaseMs, { count: 0, activate: type === 'handshake' });
  }

  /** Server-managed status, written as a new version of the Subscription (so reads and history show it). */
  async setResourceStatus(id: string, status: 'active' | 'error' | 'requested', error?: string): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const row = await readCurrent(this.deps.db, 'Subscription', id);
        if (!row || row.deleted || !row.content) return;
        const sub = JSON.parse(row.content) as Subscription;
        if (sub.status === status && sub.error === error) return;
        // Only the server's own transitions: a subscription its client set off (or back to
        // requested after an error) in the meantime keeps what the client said.
        // requested: only from error, when an operator retries a subscription now ($retry).
        const from: Record<typeof status, readonly string[]> = { active: ['requested'], error: ['requested', 'active'], requested: ['error'] };
        if (!from[status].includes(String(sub.status))) return;
        const next: Subscription = { ...sub, status };
        if (error) next.error = error;
        else delete next.error;
        await this.deps.repository.write([{ method: 'PUT', type: 'Subscription', id, resource: next, ifMatch: row.versionId }], { ...SYSTEM_CONTEXT, channel: 'subscription' });
        return;
      } catch (e) {
        if ((e as { code?: string }).code !== 'GW_ERR_VERSION_CONFLICT') {
          this.deps.logger.warn({ err: e, subscription: id }, 'could not record the subscription status');
          return;
        }
      }
    }
  }
}
