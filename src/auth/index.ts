/**
 * Authentication of the community's systems: the OAuth2 token endpoint (POST /auth/token) and
 * the verification of the bearer token on every other route except a short public list.
 * Authorisation (what a verified client may do) is policy.ts, applied by the repository.
 *
 * Wrapped with fastify-plugin so that its onRequest hook covers every route of the app: register
 * it before the routes it protects.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { GatewayError, type GwErrorCode } from '../errors.js';
import type { Queryable } from '../store/index.js';
import { createJtiStore } from './assertion.js';
import { loadConfiguredClients, type Client, type ClientRegistry } from './clients.js';
import { loadSigningKeys, type SigningKeys } from './keys.js';
import { registerTokenRoute, TOKEN_PATH } from './token-endpoint.js';
import { CONSOLE_HEADER, cookieValue, createSessionStore, registerSessionRoutes, SESSION_COOKIE, SESSION_PATH, type SessionStore } from './session.js';
import { InvalidTokenError, issueToken, tokenSettings, verifyAccessToken, type IssuedToken, type TokenSettings } from './tokens.js';

export {
  loadClients,
  loadConfiguredClients,
  parseClients,
  ClientsFileError,
  DEMO_CLIENTS_URL,
  USCC_PATTERN,
  type Client,
  type ClientJwks,
  type ClientRegistry,
} from './clients.js';
export { loadSigningKeys, generateSigningJwk, SigningKeyError, type SigningKeys, type SigningAlgorithm } from './keys.js';
export { issueToken, verifyAccessToken, tokenSettings, InvalidTokenError, type IssuedToken, type TokenSettings, type AccessTokenClaims } from './tokens.js';
export { hashSecret, verifySecret } from './secrets.js';
export { grantScopes, normalizeScope, parseScope } from './scopes.js';
export { CLIENT_ASSERTION_TYPE, createJtiStore, type JtiStore } from './assertion.js';
export { OAuthError, type OAuthErrorCode } from './oauth-error.js';
export { TOKEN_PATH } from './token-endpoint.js';
export { SESSION_PATH, SESSION_COOKIE, CONSOLE_HEADER, cookieValue, type SessionInfo, type SessionOwner, type SessionStore } from './session.js';

/** Who is calling, set on every authenticated request. */
export interface AuthInfo {
  readonly clientId: string;
  /** USCC code of the client's member institution. */
  readonly institution?: string;
  /** Granted scopes (SMART v2). */
  readonly scopes: readonly string[];
  readonly role?: string;
  /** The client may also write for the institutions under its own. */
  readonly subordinates?: boolean;
  /** End user named by the calling system in `X-User-Id`, or the operator of a console session. */
  readonly userId?: string;
  /** The console session was opened by this operator (a person's login), who is its user. */
  readonly operator?: string;
  /** The resident a patient-facing app's token acts for (Patient id). */
  readonly patient?: string;
}

/** The keys, clients and token settings of the app, also used by tests to mint tokens. */
export interface AuthServices {
  readonly clients: ClientRegistry;
  readonly keys: SigningKeys;
  readonly settings: TokenSettings;
  /** Signs an access token for a registered client (default: all its scopes), without HTTP. */
  mint(clientId: string, scopes?: readonly string[], options?: { now?: number; ttlSeconds?: number; patient?: string }): Promise<string>;
  /** Verifies a bearer token as the request hook does; throws InvalidTokenError. */
  verify(token: string, userId?: string): Promise<AuthInfo>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth plugin on every non-public route. */
    auth?: AuthInfo;
  }
  interface FastifyInstance {
    auth: AuthServices;
  }
}

export interface PublicRoute {
  readonly method: string;
  /** Route pattern as registered (request.routeOptions.url). */
  readonly url: string;
}

/** Routes served without a token. HEAD is allowed wherever GET is. */
export const PUBLIC_ROUTES: readonly PublicRoute[] = Object.freeze([
  { method: 'GET', url: '/fhir/metadata' },
  // CDS Hooks discovery lists the services; calling one needs a token.
  { method: 'GET', url: '/cds-services' },
  { method: 'GET', url: '/healthz' },
  { method: 'GET', url: '/readyz' },
  { method: 'POST', url: TOKEN_PATH },
  // The console logs in here (client id and secret) and gets a session cookie, never a token.
  { method: 'POST', url: SESSION_PATH },
  // Websocket subscriptions prove their right with a binding token sent over the socket.
  { method: 'GET', url: '/ws' },
  // The console's page and scripts hold no data; what it shows is fetched with its session.
  { method: 'GET', url: '/console' },
  { method: 'GET', url: '/console/' },
  { method: 'GET', url: '/console/*' },
]);

export interface AuthPluginOptions {
  readonly config: Pick<Config, 'baseUrl' | 'tokenTtlSeconds' | 'clientsFile' | 'authSigningKey'> & Partial<Pick<Config, 'consoleIdleMinutes' | 'consoleSessionHours'>>;
  /** Database holding the seen client-assertion jti values (migration 2). */
  readonly db: Queryable;
  /** Registered clients; default: loaded from CLIENTS_FILE (or the demo clients). */
  readonly clients?: ClientRegistry;
  /** Token signing key; default: AUTH_SIGNING_KEY (or a key generated now). */
  readonly keys?: SigningKeys;
  /** Routes served without a token; default PUBLIC_ROUTES. */
  readonly publicRoutes?: readonly PublicRoute[];
}

const USER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/|-]{0,127}$/;
const BEARER_RE = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const REALM = 'county-hie';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** Validates the optional X-User-Id header; throws GW_ERR_BAD_REQUEST on a bad shape. */
export function userIdOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !USER_ID_RE.test(header)) {
    throw new GatewayError('GW_ERR_BAD_REQUEST', 'X-User-Id must be 1 to 128 letters, digits or . _ : @ / | - (the user id in the calling system)', {
      expression: 'X-User-Id',
    });
  }
  return header;
}

export function createAuthServices(clients: ClientRegistry, keys: SigningKeys, settings: TokenSettings): AuthServices {
  const known = (clientId: string): Client => {
    const client = clients.get(clientId);
    if (!client) throw new Error(`Unknown client "${clientId}"`);
    return client;
  };
  return {
    clients,
    keys,
    settings,
    async mint(clientId, scopes, options) {
      const token: IssuedToken = await issueToken(keys, settings, known(clientId), scopes, options);
      return token.accessToken;
    },
    async verify(token, userId) {
      const claims = await verifyAccessToken(keys, settings, token);
      const client = clients.get(claims.client_id);
      if (!client || client.disabled) throw new InvalidTokenError(`client "${claims.client_id}" is no longer registered or is disabled`);
      return {
        clientId: client.clientId,
        ...(claims.institution ? { institution: claims.institution } : {}),
        scopes: claims.scope.split(' ').filter((s) => s !== ''),
        ...(client.role ? { role: client.role } : {}),
        ...(client.subordinates ? { subordinates: true } : {}),
        ...(userId ? { userId } : {}),
        ...(claims.patient ? { patient: claims.patient } : {}),
      };
    },
  };
}

function quoted(text: string): string {
  return text.replace(/["\\]/g, "'");
}

function deny(reply: FastifyReply, code: GwErrorCode, message: string, challenge: string): FastifyReply {
  const err = new GatewayError(code, message);
  return reply.code(err.statusCode).header('www-authenticate', challenge).header('content-type', FHIR_JSON).send(err.outcome);
}

function isPublic(req: FastifyRequest, routes: readonly PublicRoute[]): boolean {
  const url = req.routeOptions.url;
  if (url === undefined) return false;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  return routes.some((r) => r.url === url && r.method === method);
}

async function auth(app: FastifyInstance, opts: AuthPluginOptions): Promise<void> {
  const settings = tokenSettings(opts.config);
  const clients = opts.clients ?? (await loadConfiguredClients(opts.config, app.log));
  let keys = opts.keys;
  if (!keys) {
    keys = await loadSigningKeys(opts.config.authSigningKey);
    if (keys.ephemeral) {
      app.log.warn('AUTH_SIGNING_KEY is not set: signing tokens with a key generated at start; tokens do not survive a restart nor work on other instances');
    }
  }
  const services = createAuthServices(clients, keys, settings);
  const publicRoutes = opts.publicRoutes ?? PUBLIC_ROUTES;
  const sessionSettings = {
    idleMinutes: opts.config.consoleIdleMinutes ?? 15,
    maxHours: opts.config.consoleSessionHours ?? 8,
    secure: opts.config.baseUrl.startsWith('https:'),
  };
  const sessions: SessionStore = createSessionStore(opts.db, sessionSettings);
  app.decorate('auth', services);
  app.decorateRequest('auth', undefined);

  /** A console request: the session cookie stands for the client's token (all its scopes). */
  const fromSession = async (req: FastifyRequest, reply: FastifyReply, id: string): Promise<FastifyReply | undefined> => {
    // What the console is shown is personal data: no browser or proxy cache may keep any answer.
    void reply.header('cache-control', 'no-store');
    if (req.headers[CONSOLE_HEADER] !== '1') {
      return deny(reply, 'GW_ERR_UNAUTHORIZED', `A console session cookie is accepted only with the header ${CONSOLE_HEADER}: 1`, `Bearer realm="${REALM}"`);
    }
    const owner = await sessions.touch(id);
    const client = owner === undefined ? undefined : clients.get(owner.clientId);
    const operator = owner?.operator === undefined ? undefined : clients.operator(owner.operator);
    if (!client || client.disabled || (owner?.operator !== undefined && (!operator || operator.disabled || operator.client !== client.clientId))) {
      return deny(reply, 'GW_ERR_UNAUTHORIZED', 'The console session has ended (logout, idle time or its maximum length): log in again', `Bearer realm="${REALM}"`);
    }
    // An operator's session is that person's: no header names another user.
    const userId = operator ? operator.username : userIdOf(req.headers['x-user-id']);
    req.auth = {
      clientId: client.clientId,
      ...(client.institution ? { institution: client.institution } : {}),
      scopes: client.scopes,
      ...(client.role ? { role: client.role } : {}),
      ...(client.subordinates ? { subordinates: true } : {}),
      ...(userId ? { userId } : {}),
      ...(operator ? { operator: operator.username } : {}),
    };
    return undefined;
  };

  app.addHook('onRequest', async (req, reply) => {
    if (isPublic(req, publicRoutes)) return;
    const header = req.headers.authorization;
    const sessionId = header === undefined ? cookieValue(req.headers.cookie, SESSION_COOKIE) : undefined;
    if (sessionId) return fromSession(req, reply, sessionId);
    if (header === undefined || !/^Bearer\b/i.test(header)) {
      return deny(reply, 'GW_ERR_UNAUTHORIZED', 'Authentication required: send Authorization: Bearer <access token> from POST /auth/token', `Bearer realm="${REALM}"`);
    }
    const m = BEARER_RE.exec(header);
    const invalid = (why: string) =>
      deny(reply, 'GW_ERR_INVALID_TOKEN', `Invalid access token: ${why}`, `Bearer realm="${REALM}", error="invalid_token", error_description="${quoted(why)}"`);
    if (!m) return invalid('the Authorization header is not "Bearer <token>"');
    const userId = userIdOf(req.headers['x-user-id']);
    try {
      req.auth = await services.verify(m[1], userId);
    } catch (e) {
      if (e instanceof InvalidTokenError) return invalid(e.message);
      throw e;
    }
  });

  await registerSessionRoutes(app, { clients, store: sessions, settings: sessionSettings, db: opts.db });
  await registerTokenRoute(app, { clients, keys, settings, jti: createJtiStore(opts.db), tokenUrl: `${opts.config.baseUrl}${TOKEN_PATH}`, db: opts.db });
}

/** The auth plugin: `await app.register(authPlugin, { config, db })` before the protected routes. */
export const authPlugin = fp(auth, { name: 'county-hie-auth', fastify: '5.x' });
