/**
 * Backport IG operations on subscriptions: `$status` (the subscription's status, event count and
 * last error as a query-status Parameters) and `$events` (past events again, as a query-event
 * notification Bundle, so that a subscriber that missed some can catch up).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Parameters } from '@medplum/fhirtypes';
import type { Config } from '../config.js';
import type { Db } from '../store/index.js';
import { GatewayError } from '../errors.js';
import { assertCan, can, forbidden } from '../auth/policy.js';
import { recordAccess } from '../audit/index.js';
import { restContext, FHIR_JSON } from '../fhir/routes.js';
import type { RequestContext } from '../fhir/context.js';
import { notificationBundle, statusSearchset, type StatusFacts } from './notification.js';
import { eventsAfter, notifiedEvent, readState, stateWithPendingSql, type StateRow, type SubscriptionState } from './state.js';
import type { PayloadContent } from './spec.js';
import type { WebsocketHub } from './websocket.js';
import type { Dispatcher } from './dispatcher.js';

export interface SubscriptionRouteDeps {
  readonly db: Db;
  readonly config: Pick<Config, 'baseUrl' | 'maxPageSize'>;
  readonly websockets: WebsocketHub;
  /** Retry now ($retry); without it the operation is not offered. */
  readonly dispatcher?: Pick<Dispatcher, 'retryNow'>;
}

type Query = Record<string, string | string[] | undefined>;

function one(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) {
    if (v.length > 1) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} may appear only once`, { expression: name });
    return v[0];
  }
  return v;
}

function number(q: Query, name: string): number | undefined {
  const v = one(q, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} must be a non-negative whole number, not "${v}"`, { expression: name });
  return Number(v);
}

function facts(s: SubscriptionState): StatusFacts {
  return { subscriptionId: s.id, topic: s.spec.topic, status: s.status, eventsSinceStart: s.events_count, ...(s.last_error ? { error: s.last_error } : {}) };
}

/** The subscription's delivery state (its committed events numbered), for its owner or an administrator. */
async function ownState(db: Db, ctx: RequestContext, id: string): Promise<SubscriptionState> {
  assertCan(ctx, 'Subscription', 'r');
  const state = await readState(db, id);
  if (!state) throw new GatewayError('GW_ERR_NOT_FOUND', `Subscription/${id} not found`, { expression: 'id' });
  if (state.owner_client && ctx.clientId !== state.owner_client && ctx.role !== 'admin') {
    throw forbidden(`Subscription/${id} belongs to client "${state.owner_client}"`, 'id');
  }
  return state;
}

export async function subscriptionRoutes(app: FastifyInstance, deps: SubscriptionRouteDeps): Promise<void> {
  const base = `${deps.config.baseUrl}/fhir`;
  const send = (reply: import('fastify').FastifyReply, body: unknown) => reply.code(200).header('content-type', FHIR_JSON).send(JSON.stringify(body));

  const status = async (req: FastifyRequest, ids: string[]) => {
    const ctx = restContext(req);
    const all: StatusFacts[] = [];
    for (const id of ids) all.push(facts(await ownState(deps.db, ctx, id)));
    await recordAccess(deps.db, ctx, [{ interaction: 'read', outcome: '0', resources: ids.map((id) => `Subscription/${id}`), patients: [] }]);
    return statusSearchset(base, all);
  };

  app.get<{ Params: { id: string } }>('/Subscription/:id/$status', { config: { interaction: 'operation' } }, async (req, reply) => {
    return send(reply, await status(req, [req.params.id]));
  });
  app.get('/Subscription/$status', { config: { interaction: 'operation' } }, async (req, reply) => {
    const q = req.query as Query;
    const list = (name: string) => ([] as string[]).concat(q[name] ?? []).flatMap((v) => v.split(',')).filter((v) => v !== '');
    let ids = list('id');
    const statuses = list('status');
    for (const s of statuses) {
      if (!['requested', 'active', 'error', 'off'].includes(s)) throw new GatewayError('GW_ERR_BAD_REQUEST', `status "${s}" is not requested, active, error or off`, { expression: 'status' });
    }
    if (ids.length === 0) {
      // No id: every subscription available to the caller (its own; all of them for an administrator).
      const ctx = restContext(req);
      assertCan(ctx, 'Subscription', 'r');
      const { rows } = await deps.db.query<{ id: string }>(
        'SELECT id FROM subscription_state WHERE ($1::text IS NULL OR owner_client = $1) ORDER BY created, id LIMIT $2',
        [ctx.role === 'admin' ? null : (ctx.clientId ?? ''), deps.config.maxPageSize],
      );
      ids = rows.map((r) => r.id);
    }
    const bundle = await status(req, ids);
    if (statuses.length > 0) {
      bundle.entry = bundle.entry?.filter((e) => statuses.includes(String((e.resource as Parameters).parameter?.find((p) => p.name === 'status')?.valueCode)));
      bundle.total = bundle.entry?.length ?? 0;
    }
    return send(reply, bundle);
  });

  app.get<{ Params: { id: string } }>('/Subscription/:id/$events', { config: { interaction: 'operation' } }, async (req, reply) => {
    const ctx = restContext(req);
    const q = req.query as Query;
    const state = await ownState(deps.db, ctx, req.params.id);
    const since = number(q, 'eventsSinceNumber') ?? 1;
    const until = number(q, 'eventsUntilNumber');
    if (until !== undefined && until < since) throw new GatewayError('GW_ERR_BAD_REQUEST', 'eventsUntilNumber is below eventsSinceNumber', { expression: 'eventsUntilNumber' });
    const contentRaw = one(q, 'content') ?? state.spec.content;
    if (!['empty', 'id-only', 'full-resource'].includes(contentRaw)) {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `content "${contentRaw}" is not empty, id-only or full-resource`, { expression: 'content' });
    }
    const content = contentRaw as PayloadContent;
    const rows = await eventsAfter(deps.db, state.id, since - 1, deps.config.maxPageSize, until, content === 'full-resource');
    // What the events carry is read now, with the asking client's rights.
    const events = rows.map((r) => notifiedEvent(r, can(ctx, r.type, 'r')));
    await recordAccess(deps.db, ctx, [
      { interaction: 'read', outcome: '0', resources: [`Subscription/${state.id}`, ...events.map((e) => `${e.type}/${e.id}/_history/${e.versionId}`)], patients: [] },
    ]);
    return send(reply, notificationBundle(base, facts(state), 'query-event', content, events));
  });

  if (deps.dispatcher) {
    const dispatcher = deps.dispatcher;
    // $retry takes no input: a Parameters body, if any, is not read.
    if (!app.hasContentTypeParser('application/fhir+json')) app.addContentTypeParser('application/fhir+json', { parseAs: 'buffer' }, (_req, _body, done) => done(null, undefined));
    // Retry now: the operator (or the owner) does not wait for the back-off after a fix at the subscriber.
    app.post<{ Params: { id: string } }>('/Subscription/:id/$retry', { config: { interaction: 'operation' } }, async (req, reply) => {
      const ctx = restContext(req);
      assertCan(ctx, 'Subscription', 'u');
      const state = await ownState(deps.db, ctx, req.params.id);
      if (state.status === 'off' || !(await dispatcher.retryNow(state.id))) {
        throw new GatewayError('GW_ERR_BUSINESS_RULE', `Subscription/${state.id} is off; its owner turns it on with status requested`, { expression: 'status' });
      }
      await recordAccess(deps.db, ctx, [{ interaction: 'operation', operation: '$retry', outcome: '0', resources: [`Subscription/${state.id}`], patients: [] }]);
      const after = await readState(deps.db, state.id);
      return send(reply, statusSearchset(base, after ? [facts(after)] : []));
    });
  }

  const bindingToken = async (req: FastifyRequest, ids: string[]) => {
    const ctx = restContext(req);
    if (ids.length === 0) throw new GatewayError('GW_ERR_BAD_REQUEST', '$get-ws-binding-token needs one or more id parameters', { expression: 'id' });
    for (const id of ids) {
      const state = await ownState(deps.db, ctx, id);
      if (state.channel !== 'websocket') throw new GatewayError('GW_ERR_BUSINESS_RULE', `Subscription/${id} does not use the websocket channel`, { expression: 'id' });
    }
    const { token, expiration } = await deps.websockets.bindingToken(ids);
    const params: Parameters = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'token', valueString: token },
        { name: 'expiration', valueDateTime: expiration },
        ...ids.map((id) => ({ name: 'subscription', valueString: id })),
        { name: 'websocket-url', valueUrl: deps.websockets.url },
      ],
    };
    return params;
  };
  app.get<{ Params: { id: string } }>('/Subscription/:id/$get-ws-binding-token', { config: { interaction: 'operation' } }, async (req, reply) => {
    return send(reply, await bindingToken(req, [req.params.id]));
  });
  app.get('/Subscription/$get-ws-binding-token', { config: { interaction: 'operation' } }, async (req, reply) => {
    const ids = ([] as string[]).concat((req.query as Query).id ?? []).flatMap((v) => v.split(',')).filter((v) => v !== '');
    return send(reply, await bindingToken(req, ids));
  });
}

/** One subscription's delivery, as the operators' console shows it. */
export interface DeliveryRow {
  readonly id: string;
  readonly status: string;
  readonly channel: string;
  readonly topic?: string;
  readonly owner?: string;
  /** Events recorded since the subscription started, those committed and not numbered yet included. */
  readonly events: number;
  readonly deliveredThrough: number;
  /** Events not yet delivered (numbered or not). */
  readonly backlog: number;
  readonly failures: number;
  readonly deliveredTotal: number;
  readonly failedTotal: number;
  readonly lastError?: string;
  readonly lastAttempt?: string;
  readonly lastDelivered?: string;
  readonly nextAttempt?: string;
}

/**
 * GET /subscriptions/delivery: every subscription available to the caller (its own; all for an
 * administrator) with its status, backlog, failures, last error and the times of the last and
 * next attempts. Plain JSON for the console; the FHIR view of the same is `$status`.
 */
export function subscriptionDeliveryRoutes(deps: Pick<SubscriptionRouteDeps, 'db' | 'config'>) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/delivery', { config: { interaction: 'subscription-delivery' } }, async (req): Promise<{ subscriptions: DeliveryRow[] }> => {
      const ctx = restContext(req);
      assertCan(ctx, 'Subscription', 's');
      const { rows } = await deps.db.query<StateRow & { pending: number }>(
        `${stateWithPendingSql('($1::text IS NULL OR s.owner_client = $1)')} ORDER BY s.created, s.id LIMIT $2`,
        [ctx.role === 'admin' ? null : (ctx.clientId ?? ''), deps.config.maxPageSize],
      );
      const iso = (v: string | Date | null) => (v === null ? undefined : new Date(v).toISOString());
      const subscriptions = rows.map((r): DeliveryRow => {
        const spec = JSON.parse(r.spec) as { topic?: string };
        // Events committed and not numbered yet are recorded events too (numbered when delivered).
        const events = Number(r.events_count) + Number(r.pending);
        const through = Number(r.delivered_through);
        const row: Record<string, unknown> = {
          id: r.id,
          status: r.status,
          channel: r.channel,
          topic: spec.topic,
          owner: r.owner_client ?? undefined,
          events,
          deliveredThrough: through,
          backlog: r.status === 'off' ? 0 : Math.max(0, events - through),
          failures: r.failures,
          deliveredTotal: Number(r.delivered_total),
          failedTotal: Number(r.failed_total),
          lastError: r.last_error ?? undefined,
          lastAttempt: iso(r.last_attempt),
          lastDelivered: iso(r.last_delivered),
          nextAttempt: r.status === 'requested' || r.status === 'active' ? iso(r.next_attempt) : undefined,
        };
        for (const k of Object.keys(row)) if (row[k] === undefined) delete row[k];
        return row as unknown as DeliveryRow;
      });
      await recordAccess(deps.db, ctx, [{ interaction: 'search-type', outcome: '0', resources: subscriptions.map((x) => `Subscription/${x.id}`), patients: [], query: 'subscriptions/delivery' }]);
      return { subscriptions };
    });
  };
}
