/**
 * Console sessions: the web console (/console) logs in with a registered OAuth2 client's id and
 * secret, like POST /auth/token, or with an operator account (a person's username and password,
 * acting as a client: clients file `operators`), but never holds a token. The gateway keeps the
 * session in the database (console_session, migrations 11 and 17) and gives the browser only a
 * random id in an httpOnly, SameSite=Strict cookie. A request that carries the cookie (and the
 * X-Console header, which a cross-site form cannot send) acts as that client, with all its
 * registered scopes; an operator's session has the operator as its user (audited by name).
 *
 *   POST   /auth/session   { clientId, clientSecret } or { username, password }
 *                          → 200 who you are, Set-Cookie (audited)
 *   GET    /auth/session   who you are (the session is touched like any request)
 *   DELETE /auth/session   logout: the session row is deleted, the cookie cleared (audited)
 *
 * A session ends at logout, after CONSOLE_IDLE_MINUTES without a request, and
 * CONSOLE_SESSION_HOURS after login.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { recordAccess } from '../audit/index.js';
import type { Queryable } from '../store/index.js';
import type { Client, ClientRegistry, Operator } from './clients.js';
import { verifySecret } from './secrets.js';
import { OAuthError } from './oauth-error.js';
import { authenticateBySecret } from './token-endpoint.js';

export const SESSION_PATH = '/auth/session';
export const SESSION_COOKIE = 'hie_console';
/** Header every cookie-authenticated request must carry (a cross-site form cannot set it). */
export const CONSOLE_HEADER = 'x-console';

export interface SessionSettings {
  readonly idleMinutes: number;
  readonly maxHours: number;
  /** Cookie marked Secure when the gateway is served over https. */
  readonly secure: boolean;
}

/** Who a live session acts as: the client, and the operator when a person logged in. */
export interface SessionOwner {
  readonly clientId: string;
  readonly operator?: string;
}

export interface SessionStore {
  /** Opens a session for the client (and operator); returns the id to put in the cookie. */
  create(owner: SessionOwner): Promise<string>;
  /** The owner of a live session (its idle clock restarted), or undefined when it has ended. */
  touch(id: string): Promise<SessionOwner | undefined>;
  destroy(id: string): Promise<void>;
}

function hashOf(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function createSessionStore(db: Queryable, settings: Pick<SessionSettings, 'idleMinutes' | 'maxHours'>): SessionStore {
  const idle = `${settings.idleMinutes} minutes`;
  const max = `${settings.maxHours} hours`;
  return {
    async create({ clientId, operator }) {
      // Ended sessions are removed as new ones start: the table stays as small as the live set.
      await db.query(`DELETE FROM console_session WHERE last_seen < now() - $1::interval OR created_at < now() - $2::interval`, [idle, max]);
      const id = randomBytes(32).toString('base64url');
      await db.query('INSERT INTO console_session (id_hash, client_id, operator) VALUES ($1, $2, $3)', [hashOf(id), clientId, operator ?? null]);
      return id;
    },
    async touch(id) {
      if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
      const { rows } = await db.query<{ client_id: string; operator: string | null }>(
        `UPDATE console_session SET last_seen = now()
          WHERE id_hash = $1 AND last_seen >= now() - $2::interval AND created_at >= now() - $3::interval
          RETURNING client_id, operator`,
        [hashOf(id), idle, max],
      );
      const row = rows[0];
      return row && { clientId: row.client_id, ...(row.operator ? { operator: row.operator } : {}) };
    },
    async destroy(id) {
      await db.query('DELETE FROM console_session WHERE id_hash = $1', [hashOf(id)]);
    },
  };
}

/** Checks an operator's password (the same scrypt hashes as client secrets); a disabled operator is refused. */
async function authenticateOperator(clients: ClientRegistry, username: string, password: string): Promise<Operator> {
  const operator = clients.operator(username);
  const ok = await verifySecret(password, operator?.secretHash);
  if (!ok || !operator) throw new OAuthError('invalid_client', 'operator authentication failed');
  if (operator.disabled) throw new OAuthError('unauthorized_client', `operator "${operator.username}" is disabled`);
  return operator;
}

/** The value of one cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function cookie(value: string, settings: SessionSettings, maxAgeSeconds?: number): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    ...(settings.secure ? ['Secure'] : []),
    ...(maxAgeSeconds !== undefined ? [`Max-Age=${maxAgeSeconds}`] : []),
  ].join('; ');
}

export interface SessionInfo {
  readonly clientId: string;
  /** The operator's name when a person logged in, else the client's. */
  readonly name: string;
  /** The operator's username, when a person logged in. */
  readonly operator?: string;
  readonly role?: string;
  readonly institution?: string;
  readonly scopes: readonly string[];
  readonly idleMinutes: number;
}

function infoOf(client: Client, settings: SessionSettings, operator?: Operator): SessionInfo {
  return {
    clientId: client.clientId,
    name: operator?.name ?? client.name,
    ...(operator ? { operator: operator.username } : {}),
    ...(client.role ? { role: client.role } : {}),
    ...(client.institution ? { institution: client.institution } : {}),
    scopes: client.scopes,
    idleMinutes: settings.idleMinutes,
  };
}

export interface SessionRouteDeps {
  readonly clients: ClientRegistry;
  readonly store: SessionStore;
  readonly settings: SessionSettings;
  readonly db: Queryable;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Registers POST, GET and DELETE /auth/session in an encapsulated child of `app`. */
export async function registerSessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): Promise<void> {
  const { clients, store, settings, db } = deps;
  const audit = async (req: FastifyRequest, outcome: '0' | '4', clientId: string | undefined, institution: string | undefined, what: string, why?: string, userId?: string) =>
    recordAccess(db, { channel: 'console', clientId, institution, sourceIp: req.ip, requestId: String(req.id), ...(userId ? { userId } : {}) }, [
      what === 'login'
        ? { interaction: 'token', query: 'console-login', outcome, resources: [], patients: [], ...(why ? { outcomeText: why } : {}) }
        : { interaction: 'operation', operation: 'console-logout', outcome, resources: [], patients: [] },
    ]);

  await app.register(async (child) => {
    if (child.hasContentTypeParser('application/json')) child.removeContentTypeParser('application/json');
    child.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 8 * 1024 }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(new GatewayError('GW_ERR_INVALID_JSON', 'The body is not JSON'));
      }
    });
    child.setErrorHandler(async (err: FastifyError | OAuthError | GatewayError, req, reply) => {
      if (err instanceof OAuthError) {
        const body = req.body as { clientId?: unknown; username?: unknown } | undefined;
        const claimed = (v: unknown) => (typeof v === 'string' ? v.slice(0, 128) : undefined);
        // A failed operator login names the username tried, as the user.
        await audit(req, '4', claimed(body?.clientId), undefined, 'login', `${err.error}: ${err.description ?? ''}`, claimed(body?.username));
        const who = body?.username !== undefined ? 'operator' : 'client';
        const e = new GatewayError('GW_ERR_UNAUTHORIZED', err.error === 'unauthorized_client' ? `This ${who} is disabled` : who === 'operator' ? 'Unknown operator or wrong password' : 'Unknown client or wrong secret');
        return reply.code(401).header('content-type', 'application/fhir+json; charset=utf-8').send(e.outcome);
      }
      throw err;
    });

    child.post(SESSION_PATH, { config: { interaction: 'console-login' } }, async (req, reply) => {
      const body = req.body as { clientId?: unknown; clientSecret?: unknown; username?: unknown; password?: unknown } | undefined;
      const text = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
      const asClient = text(body?.clientId, 128) && text(body?.clientSecret, 512) && body?.username === undefined && body?.password === undefined;
      const asOperator = text(body?.username, 128) && text(body?.password, 512) && body?.clientId === undefined && body?.clientSecret === undefined;
      if (!body || !(asClient || asOperator)) {
        throw new GatewayError('GW_ERR_BAD_REQUEST', 'Log in with a JSON body { "clientId": "…", "clientSecret": "…" } or, as an operator, { "username": "…", "password": "…" }', {
          expression: body?.username !== undefined ? 'username' : 'clientId',
        });
      }
      let client: Client;
      let operator: Operator | undefined;
      if (asOperator) {
        operator = await authenticateOperator(clients, body.username as string, body.password as string);
        client = clients.get(operator.client) as Client;
      } else {
        client = await authenticateBySecret(clients, body.clientId as string, body.clientSecret as string);
      }
      if (client.disabled) throw new OAuthError('unauthorized_client', `client "${client.clientId}" is disabled`);
      const id = await store.create({ clientId: client.clientId, ...(operator ? { operator: operator.username } : {}) });
      await audit(req, '0', client.clientId, client.institution, 'login', undefined, operator?.username);
      req.log.info({ clientId: client.clientId, operator: operator?.username }, 'console session opened');
      return reply.code(200).header('set-cookie', cookie(id, settings)).header('cache-control', 'no-store').header('content-type', JSON_TYPE).send(infoOf(client, settings, operator));
    });

    child.get(SESSION_PATH, { config: { interaction: 'console-session' } }, async (req, reply) => {
      const client = req.auth && clients.get(req.auth.clientId);
      if (!client) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'No console session');
      const operator = req.auth?.operator === undefined ? undefined : clients.operator(req.auth.operator);
      return reply.header('cache-control', 'no-store').send(infoOf(client, settings, operator));
    });

    child.delete(SESSION_PATH, { config: { interaction: 'console-logout' } }, async (req, reply: FastifyReply) => {
      const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
      if (id) await store.destroy(id);
      await audit(req, '0', req.auth?.clientId, req.auth?.institution, 'logout', undefined, req.auth?.operator);
      return reply.code(204).header('set-cookie', cookie('', settings, 0)).send();
    });
  });
}
