/**
 * POST /auth/token: OAuth 2.0 client credentials grant (RFC 6749 §4.4) for the systems of the
 * community, with three client authentication methods: client_secret_basic, client_secret_post
 * and private_key_jwt (SMART Backend Services). Answers and errors are RFC 6749 JSON, not FHIR.
 *
 * The route lives in its own encapsulated context: its form parser and error handler do not
 * reach the FHIR routes.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { components } from '../openapi/types.js';
import type { Client, ClientRegistry } from './clients.js';
import type { SigningKeys } from './keys.js';
import { authenticateByAssertion, CLIENT_ASSERTION_TYPE, type JtiStore } from './assertion.js';
import { OAuthError } from './oauth-error.js';
import { grantScopes, splitScopeParam } from './scopes.js';
import { verifySecret } from './secrets.js';
import { issueToken, type TokenSettings } from './tokens.js';
import { recordAccess } from '../audit/index.js';
import type { Queryable } from '../store/index.js';
import { ID_CARD_SYSTEM } from '../fhir/systems.js';
import { personsByIdentifier, readMany } from '../mpi/index.js';

type TokenRequest = components['schemas']['TokenRequest'];
type TokenResponse = components['schemas']['TokenResponse'];
type OAuthErrorBody = components['schemas']['OAuthError'];

export const TOKEN_PATH = '/auth/token';
const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json; charset=utf-8';
const REALM = 'county-hie';
const BODY_LIMIT = 32 * 1024;
const KNOWN_PARAMS = new Set(['grant_type', 'scope', 'client_id', 'client_secret', 'client_assertion_type', 'client_assertion', 'patient']);
/** Role of patient-facing app clients: each token names the resident it acts for. */
export const RESIDENT_ROLE = 'resident';

/**
 * The resident a patient-facing app asks a token for (`patient`: `Patient/{id}`, or the resident
 * ID card number, which the app has verified by real-name authentication): a Patient id.
 */
async function residentOf(db: Queryable, value: string): Promise<string> {
  const ref = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(value);
  if (ref) {
    const found = await readMany(db, 'Patient', [ref[1]]);
    if (found.size) return ref[1];
  } else if (/^[0-9]{15}$|^[0-9]{17}[0-9Xx]$/.test(value)) {
    const persons = await personsByIdentifier(db, { system: ID_CARD_SYSTEM, value });
    const patient = persons[0]?.patients[0]?.id;
    if (persons.length === 1 && patient) return patient;
  }
  throw new OAuthError('invalid_request', 'patient names no known resident (Patient/{id} or resident ID card number)');
}

export interface TokenEndpointDeps {
  readonly clients: ClientRegistry;
  readonly keys: SigningKeys;
  readonly settings: TokenSettings;
  readonly jti: JtiStore;
  /** Absolute URL of this endpoint: the `aud` client assertions must carry. */
  readonly tokenUrl: string;
  /** Where token requests are audited, granted or refused. */
  readonly db: Queryable;
}

/** The client id a request claims (verified only once authentication succeeds). */
function claimedClientId(req: FastifyRequest): string | undefined {
  const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (basic) {
    const id = Buffer.from(basic[1], 'base64').toString('utf8').split(':')[0];
    try {
      return decodeURIComponent(id).slice(0, 128);
    } catch {
      return id.slice(0, 128);
    }
  }
  if (typeof req.body === 'string') {
    const id = new URLSearchParams(req.body).get('client_id');
    if (id) return id.slice(0, 128);
  }
  return undefined;
}

/** Every token request leaves an AuditEvent: a login, or a failed one under the claimed client id. */
async function auditTokenRequest(req: FastifyRequest, deps: TokenEndpointDeps, outcome: '0' | '4', clientId: string | undefined, institution?: string, why?: string): Promise<void> {
  await recordAccess(deps.db, { channel: 'rest', clientId, institution, sourceIp: req.ip, requestId: String(req.id) }, [
    { interaction: 'token', outcome, resources: [], patients: [], ...(why ? { outcomeText: why } : {}) },
  ]);
}

type AuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/** Form parameters; each at most once (RFC 6749 §3.2). */
function parseForm(body: unknown): TokenRequest {
  if (typeof body !== 'string') throw new OAuthError('invalid_request', `the request body must be ${FORM}`);
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    if (!KNOWN_PARAMS.has(k)) continue;
    if (k in out) throw new OAuthError('invalid_request', `parameter "${k}" is repeated`);
    out[k] = v;
  }
  return out as unknown as TokenRequest;
}

interface BasicCredentials {
  readonly clientId: string;
  readonly secret: string;
}

/** HTTP Basic with form-encoded id and secret (RFC 6749 §2.3.1); undefined when no Basic header. */
function parseBasic(header: string | undefined): BasicCredentials | undefined {
  if (header === undefined) return undefined;
  const m = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!m) {
    if (/^Basic\b/i.test(header)) throw new OAuthError('invalid_client', 'malformed HTTP Basic credentials');
    throw new OAuthError('invalid_request', 'the token endpoint accepts only HTTP Basic in the Authorization header');
  }
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) throw new OAuthError('invalid_client', 'malformed HTTP Basic credentials');
  try {
    const unform = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { clientId: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    throw new OAuthError('invalid_client', 'malformed HTTP Basic credentials');
  }
}

export async function authenticateBySecret(clients: ClientRegistry, clientId: string, secret: string): Promise<Client> {
  const client = clients.get(clientId);
  const ok = await verifySecret(secret, client?.secretHash);
  if (!ok || !client) throw new OAuthError('invalid_client', 'client authentication failed');
  return client;
}

async function authenticate(req: FastifyRequest, form: TokenRequest, deps: TokenEndpointDeps): Promise<{ client: Client; method: AuthMethod }> {
  const basic = parseBasic(req.headers.authorization);
  const used = [basic && 'Basic', form.client_secret !== undefined && 'client_secret', form.client_assertion !== undefined && 'client_assertion'].filter(Boolean);
  if (used.length > 1) throw new OAuthError('invalid_request', `use exactly one client authentication method, not ${used.join(' and ')}`);
  if (basic) {
    if (form.client_id !== undefined && form.client_id !== basic.clientId) throw new OAuthError('invalid_request', 'client_id differs from the HTTP Basic user');
    return { client: await authenticateBySecret(deps.clients, basic.clientId, basic.secret), method: 'client_secret_basic' };
  }
  if (form.client_secret !== undefined) {
    if (!form.client_id) throw new OAuthError('invalid_request', 'client_secret needs client_id');
    return { client: await authenticateBySecret(deps.clients, form.client_id, form.client_secret), method: 'client_secret_post' };
  }
  if (form.client_assertion !== undefined) {
    if (form.client_assertion_type !== CLIENT_ASSERTION_TYPE) {
      throw new OAuthError('invalid_client', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
    }
    const client = await authenticateByAssertion({
      assertion: form.client_assertion,
      clientId: form.client_id,
      tokenUrl: deps.tokenUrl,
      clients: deps.clients,
      jti: deps.jti,
    });
    return { client, method: 'private_key_jwt' };
  }
  throw new OAuthError('invalid_client', 'client authentication is required: HTTP Basic, client_id with client_secret, or client_assertion');
}

function sendError(reply: FastifyReply, e: OAuthError, basicUsed: boolean): FastifyReply {
  if (e.error === 'invalid_client' && basicUsed) reply.header('www-authenticate', `Basic realm="${REALM}", charset="UTF-8"`);
  const body: OAuthErrorBody = e.toJSON();
  return reply.code(e.statusCode).header('content-type', JSON_TYPE).header('cache-control', 'no-store').header('pragma', 'no-cache').send(body);
}

async function handleToken(req: FastifyRequest, reply: FastifyReply, deps: TokenEndpointDeps): Promise<TokenResponse> {
  const ctype = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (ctype !== FORM) throw new OAuthError('invalid_request', `the request body must be ${FORM}`);
  const form = parseForm(req.body);
  if (!form.grant_type) throw new OAuthError('invalid_request', 'grant_type is required');
  if (form.grant_type !== 'client_credentials') {
    throw new OAuthError('unsupported_grant_type', `grant_type "${form.grant_type.slice(0, 64)}" is not supported; use client_credentials`);
  }
  const { client, method } = await authenticate(req, form, deps);
  if (client.disabled) throw new OAuthError('unauthorized_client', `client "${client.clientId}" is disabled`);
  const requested = form.scope === undefined || form.scope.trim() === '' ? undefined : splitScopeParam(form.scope);
  const granted = grantScopes(client.scopes, requested);
  if (granted.length === 0) {
    throw new OAuthError(
      'invalid_scope',
      requested === undefined
        ? `client "${client.clientId}" has no scopes`
        : `none of the requested scopes may be granted to client "${client.clientId}" (allowed: ${client.scopes.join(' ')})`,
    );
  }
  let patient: string | undefined;
  if (client.role === RESIDENT_ROLE) {
    if (!form.patient) throw new OAuthError('invalid_request', 'a resident app must name the resident: patient=Patient/{id} or the ID card number');
    patient = await residentOf(deps.db, form.patient);
  } else if (form.patient !== undefined) {
    throw new OAuthError('invalid_request', 'patient is only for patient-facing app clients');
  }
  const token = await issueToken(deps.keys, deps.settings, client, granted, { patient });
  await auditTokenRequest(req, deps, '0', client.clientId, client.institution);
  req.log.info({ clientId: client.clientId, authMethod: method, scope: token.scope }, 'access token issued');
  void reply.header('cache-control', 'no-store').header('pragma', 'no-cache').header('content-type', JSON_TYPE);
  return { access_token: token.accessToken, token_type: 'Bearer', expires_in: token.expiresIn, scope: token.scope };
}

/** Registers POST /auth/token in an encapsulated child of `app`. */
export async function registerTokenRoute(app: FastifyInstance, deps: TokenEndpointDeps): Promise<void> {
  await app.register(async (child) => {
    if (child.hasContentTypeParser(FORM)) child.removeContentTypeParser(FORM);
    child.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_req, body, done) => done(null, body));

    child.setErrorHandler(async (err: FastifyError | OAuthError, req, reply) => {
      const basicUsed = /^Basic\b/i.test(req.headers.authorization ?? '');
      if (err instanceof OAuthError) {
        req.log.info({ oauthError: err.error, reason: err.description }, 'token request refused');
        await auditTokenRequest(req, deps, '4', claimedClientId(req), undefined, `${err.error}: ${err.description ?? ''}`).catch((e: unknown) =>
          req.log.error({ err: e }, 'token refusal could not be audited'),
        );
        return sendError(reply, err, basicUsed);
      }
      const status = (err as FastifyError).statusCode ?? 500;
      if (status < 500) return sendError(reply, new OAuthError('invalid_request', err.message), basicUsed);
      req.log.error({ err }, 'token endpoint failed');
      return sendError(reply, new OAuthError('server_error', 'the token could not be issued; retry later'), basicUsed);
    });

    child.post(TOKEN_PATH, { bodyLimit: BODY_LIMIT, config: { interaction: 'token' } }, async (req, reply): Promise<TokenResponse> => handleToken(req, reply, deps));
  });
}
