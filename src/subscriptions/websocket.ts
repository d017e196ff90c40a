/**
 * The websocket channel, as the Backport IG describes it: the owner of a websocket Subscription
 * asks `$get-ws-binding-token`, connects to `/ws` and sends `bind-with-token <token>`; the gateway
 * answers with a handshake and then sends each new event notification, and heartbeats, as text
 * frames holding the notification Bundle. Each instance watches, in the database, the events of
 * the subscriptions bound on its own sockets, so a write on any instance reaches every socket.
 * Events of a disconnected socket are not lost: they stay in the outbox for `$events`.
 */
import { SignJWT, jwtVerify } from 'jose';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { Db } from '../store/index.js';
import type { SigningKeys } from '../auth/index.js';
import type { Logger } from '../logger.js';
import { notificationBundle, type NotifiedEvent } from './notification.js';
import { eventsAfter, notifiedEvent, numberEvents, readState, type SubscriptionState } from './state.js';

export const WS_PATH = '/ws';
const TOKEN_TTL_SECONDS = 300;

interface Binding {
  readonly socket: WebSocket;
  readonly id: string;
  cursor: number;
  lastSent: number;
  sending: boolean;
}

export interface WebsocketHubDeps {
  readonly db: Db;
  readonly keys: SigningKeys;
  readonly baseUrl: string;
  readonly pollMs: number;
  readonly defaultHeartbeatSeconds: number;
  readonly logger: Logger;
  /** Marks a requested subscription active once a socket is bound to it. */
  readonly activate: (id: string) => Promise<void>;
}

export class WebsocketHub {
  private readonly bindings = new Set<Binding>();
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(private readonly deps: WebsocketHubDeps) {}

  get url(): string {
    return `${this.deps.baseUrl.replace(/^http/, 'ws')}${WS_PATH}`;
  }

  /** A short-lived token binding a websocket to these subscriptions, signed with the gateway's token key. */
  async bindingToken(ids: readonly string[]): Promise<{ token: string; expiration: string }> {
    const exp = Math.floor(Date.now() / 1000) + TOKEN_TTL_SECONDS;
    const token = await new SignJWT({ subscriptions: [...ids] })
      .setProtectedHeader({ alg: this.deps.keys.alg, kid: this.deps.keys.kid, typ: 'ws-binding+jwt' })
      .setAudience(this.url)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(this.deps.keys.privateKey);
    return { token, expiration: new Date(exp * 1000).toISOString() };
  }

  private async verify(token: string): Promise<string[]> {
    const { payload } = await jwtVerify(token, this.deps.keys.publicKey, { audience: this.url, typ: 'ws-binding+jwt' });
    const subs = (payload as { subscriptions?: unknown }).subscriptions;
    if (!Array.isArray(subs) || !subs.every((s) => typeof s === 'string')) throw new Error('token names no subscription');
    return subs;
  }

  /** Serves one websocket connection. */
  attach(socket: WebSocket): void {
    const mine = new Set<Binding>();
    const refuse = (message: string) => {
      socket.send(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'security', diagnostics: message }] }));
    };
    socket.on('message', (data) => {
      const text = String(data).trim();
      const m = /^(bind|unbind)-with-token\s+(\S+)$/.exec(text);
      if (!m) return refuse('expected "bind-with-token <token>" or "unbind-with-token <token>"');
      void this.verify(m[2]).then(
        async (ids) => {
          for (const id of ids) {
            for (const b of mine) {
              if (b.id !== id) continue;
              mine.delete(b);
              this.bindings.delete(b);
            }
            if (m[1] === 'unbind') continue;
            const state = await readState(this.deps.db, id);
            if (!state || state.channel !== 'websocket' || state.status === 'off') {
              refuse(`Subscription/${id} is not a websocket subscription that can be bound`);
              continue;
            }
            const b: Binding = { socket, id, cursor: state.events_count, lastSent: Date.now(), sending: false };
            mine.add(b);
            this.bindings.add(b);
            this.send(b, state, 'handshake', []);
            if (state.status !== 'active') await this.deps.activate(id);
          }
        },
        (err: unknown) => {
          refuse(`binding token refused: ${(err as Error).message}`);
          socket.close(1008, 'invalid binding token');
          // A client that does not complete the closing handshake is cut after a second.
          setTimeout(() => socket.terminate(), 1000).unref();
        },
      );
    });
    socket.on('close', () => {
      for (const b of mine) this.bindings.delete(b);
    });
  }

  private send(b: Binding, state: SubscriptionState, type: 'handshake' | 'heartbeat' | 'event-notification', events: readonly NotifiedEvent[]): void {
    const bundle = notificationBundle(
      `${this.deps.baseUrl}/fhir`,
      { subscriptionId: state.id, topic: state.spec.topic, status: type === 'handshake' && state.status === 'requested' ? 'requested' : 'active', eventsSinceStart: events.length ? events[events.length - 1].eventNumber : state.events_count },
      type,
      state.spec.content,
      events,
    );
    b.socket.send(JSON.stringify(bundle));
    b.lastSent = Date.now();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = () => {
      void this.poll()
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'websocket notification poll failed'))
        .finally(() => {
          if (this.running) this.timer = setTimeout(tick, this.deps.pollMs);
        });
    };
    tick();
  }

  /** Closes the bound sockets (1001); those whose client does not answer within a second are cut. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    const sockets = new Set([...this.bindings].map((b) => b.socket));
    this.bindings.clear();
    const closed = [...sockets].map((s) => new Promise<void>((resolve) => (s.readyState === s.CLOSED ? resolve() : s.once('close', () => resolve()))));
    for (const s of sockets) s.close(1001, 'gateway shutting down');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
    for (const s of sockets) if (s.readyState !== s.CLOSED) s.terminate();
  }

  /** Sends what is new for every bound subscription, and heartbeats that are due. */
  async poll(): Promise<void> {
    const ids = [...new Set([...this.bindings].map((b) => b.id))];
    if (ids.length === 0) return;
    const counts = new Map<string, number>();
    for (const id of ids) {
      const count = await numberEvents(this.deps.db, id);
      if (count !== undefined) counts.set(id, count);
    }
    for (const b of this.bindings) {
      if (b.sending || b.socket.readyState !== b.socket.OPEN) continue;
      const count = counts.get(b.id);
      if (count === undefined) continue;
      b.sending = true;
      try {
        const state = await readState(this.deps.db, b.id);
        if (!state) continue;
        if (count > b.cursor) {
          const full = state.spec.content === 'full-resource';
          const rowsAfter = await eventsAfter(this.deps.db, b.id, b.cursor, 500, undefined, full);
          const events = rowsAfter.map((r) => notifiedEvent(r, full));
          for (let i = 0; i < events.length; i += state.spec.maxCount) {
            const chunk = events.slice(i, i + state.spec.maxCount);
            this.send(b, state, 'event-notification', chunk);
            b.cursor = chunk[chunk.length - 1].eventNumber;
          }
        } else {
          const heartbeat = state.spec.heartbeatSeconds ?? this.deps.defaultHeartbeatSeconds;
          if (heartbeat > 0 && Date.now() - b.lastSent >= heartbeat * 1000) this.send(b, state, 'heartbeat', []);
        }
      } finally {
        b.sending = false;
      }
    }
  }
}

/** GET /ws (websocket upgrade; the socket proves its right with a binding token, not a bearer token). */
export async function websocketRoute(app: FastifyInstance, hub: WebsocketHub): Promise<void> {
  app.get(WS_PATH, { websocket: true, config: { interaction: 'websocket' } }, (socket) => hub.attach(socket));
}
