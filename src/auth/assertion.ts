/**
 * private_key_jwt client authentication (SMART Backend Services, RFC 7523): a JWT signed RS384 or
 * ES384 by a key in the client's registered JWKS, with iss = sub = client_id, aud = the token
 * endpoint URL, exp in the future but at most five minutes ahead, and a jti never seen before.
 *
 * Seen jti values are kept in PostgreSQL until they expire, so a replay is caught whichever
 * gateway instance receives it.
 */
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Queryable } from '../store/index.js';
import { ASSERTION_ALGORITHMS, type Client, type ClientRegistry } from './clients.js';
import { OAuthError } from './oauth-error.js';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Longest accepted lifetime of an assertion (SMART: no more than five minutes in the future). */
const MAX_LIFETIME_SECONDS = 300;
const CLOCK_TOLERANCE_SECONDS = 10;
const MAX_ASSERTION_LENGTH = 16384;
const MAX_JTI_LENGTH = 255;

export interface JtiStore {
  /** Records a jti; false when the client already used it and it has not yet expired (a replay). */
  remember(clientId: string, jti: string, expiresAt: Date): Promise<boolean>;
}

/** Seen jti values in table auth_assertion_jti (migration 2); expired rows are purged as it goes. */
export function createJtiStore(db: Queryable, options: { purgeEvery?: number } = {}): JtiStore {
  const purgeEvery = options.purgeEvery ?? 100;
  let count = 0;
  return {
    async remember(clientId, jti, expiresAt) {
      const now = new Date();
      if (++count % purgeEvery === 0) await db.query('DELETE FROM auth_assertion_jti WHERE expires_at < $1', [now]);
      // A row that has expired may be taken over: its assertion can no longer be replayed anyway.
      const r = await db.query(
        `INSERT INTO auth_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
           WHERE auth_assertion_jti.expires_at < $4
         RETURNING 1 AS fresh`,
        [clientId, jti, expiresAt, now],
      );
      return r.rows.length === 1;
    },
  };
}

const jwkSets = new WeakMap<Client, ReturnType<typeof createLocalJWKSet>>();

function jwkSetOf(client: Client): ReturnType<typeof createLocalJWKSet> {
  let set = jwkSets.get(client);
  if (!set) {
    set = createLocalJWKSet({ keys: client.jwks!.keys.map((k) => ({ ...k })) });
    jwkSets.set(client, set);
  }
  return set;
}

function fail(description: string): OAuthError {
  return new OAuthError('invalid_client', description);
}

function reason(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return 'the client assertion has expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'aud') return 'the client assertion\'s "aud" must be the token endpoint URL';
    return `the client assertion's "${e.claim}" claim is not valid (${e.reason})`;
  }
  if (e instanceof joseErrors.JWKSNoMatchingKey) return 'the client assertion is not signed by a key registered for this client';
  if (e instanceof joseErrors.JWKSMultipleMatchingKeys) return 'several registered keys match; set "kid" in the assertion header';
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'the client assertion signature does not verify with the registered keys';
  return 'the client assertion is not a valid JWT';
}

export interface AssertionInput {
  readonly assertion: string;
  /** `client_id` form parameter, when sent (optional with private_key_jwt). */
  readonly clientId: string | undefined;
  readonly tokenUrl: string;
  readonly clients: ClientRegistry;
  readonly jti: JtiStore;
}

/** Authenticates a client by its assertion; throws OAuthError invalid_client. */
export async function authenticateByAssertion(input: AssertionInput): Promise<Client> {
  const { assertion } = input;
  if (assertion.length > MAX_ASSERTION_LENGTH) throw fail('the client assertion is too long');
  let alg: string | undefined;
  let unverified: JWTPayload;
  try {
    alg = decodeProtectedHeader(assertion).alg;
    unverified = decodeJwt(assertion);
  } catch {
    throw fail('the client assertion is not a valid JWT');
  }
  if (!(ASSERTION_ALGORITHMS as readonly string[]).includes(alg ?? '')) {
    throw fail(`the client assertion must be signed with ${ASSERTION_ALGORITHMS.join(' or ')}, not ${String(alg)}`);
  }
  const clientId = input.clientId ?? unverified.iss;
  if (typeof clientId !== 'string' || clientId === '') throw fail('the client assertion has no "iss"');
  if (input.clientId !== undefined && unverified.iss !== input.clientId) throw fail('client_id does not match the client assertion\'s "iss"');
  const client = input.clients.get(clientId);
  if (!client?.jwks) throw fail('client authentication failed');
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(assertion, jwkSetOf(client), {
      algorithms: [...ASSERTION_ALGORITHMS],
      issuer: clientId,
      subject: clientId,
      audience: input.tokenUrl,
      requiredClaims: ['exp', 'jti'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    }));
  } catch (e) {
    throw fail(reason(e));
  }
  const now = Math.floor(Date.now() / 1000);
  const exp = payload.exp!;
  if (exp > now + MAX_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS) throw fail('the client assertion\'s "exp" is more than five minutes ahead');
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) throw fail('the client assertion needs a "jti" of 1 to 255 characters');
  const fresh = await input.jti.remember(clientId, jti, new Date((exp + CLOCK_TOLERANCE_SECONDS) * 1000));
  if (!fresh) throw fail('the client assertion has been used before (same "jti"); sign a new one for each request');
  return client;
}
