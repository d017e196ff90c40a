/**
 * Access tokens: short-lived JWTs (RFC 9068 `at+jwt`) signed with the gateway's key, and their
 * verification on every protected request.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import type { Client } from './clients.js';
import type { SigningKeys } from './keys.js';

export const ACCESS_TOKEN_TYPE = 'at+jwt';

export interface TokenSettings {
  /** `iss` of issued tokens: the gateway's base URL. */
  readonly issuer: string;
  /** `aud` of issued tokens: the FHIR base URL. */
  readonly audience: string;
  readonly ttlSeconds: number;
}

export function tokenSettings(config: { readonly baseUrl: string; readonly tokenTtlSeconds?: number }): TokenSettings {
  return Object.freeze({ issuer: config.baseUrl, audience: `${config.baseUrl}/fhir`, ttlSeconds: config.tokenTtlSeconds ?? 300 });
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly expiresIn: number;
  /** Granted scopes, space-separated. */
  readonly scope: string;
}

export interface AccessTokenClaims extends JWTPayload {
  readonly sub: string;
  readonly client_id: string;
  readonly scope: string;
  readonly institution?: string;
  /** The resident (Patient id) a patient-facing app's token acts for (SMART `patient` context). */
  readonly patient?: string;
}

/**
 * Signs an access token for `client` with `scopes` (default: all its allowed scopes). No check
 * that the scopes are allowed: the token endpoint decides that; tests use this to mint tokens
 * directly. `now` (seconds since the epoch) lets tests mint expired tokens.
 */
export async function issueToken(
  keys: SigningKeys,
  settings: TokenSettings,
  client: Pick<Client, 'clientId' | 'institution' | 'scopes'>,
  scopes: readonly string[] = client.scopes,
  options: { now?: number; ttlSeconds?: number; patient?: string } = {},
): Promise<IssuedToken> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const ttl = options.ttlSeconds ?? settings.ttlSeconds;
  const scope = scopes.join(' ');
  const claims: Record<string, string> = { scope, client_id: client.clientId };
  if (client.institution) claims.institution = client.institution;
  if (options.patient) claims.patient = options.patient;
  const accessToken = await new SignJWT(claims)
    .setProtectedHeader({ alg: keys.alg, kid: keys.kid, typ: ACCESS_TOKEN_TYPE })
    .setIssuer(settings.issuer)
    .setSubject(client.clientId)
    .setAudience(settings.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(randomUUID())
    .sign(keys.privateKey);
  return { accessToken, expiresIn: ttl, scope };
}

/** Why a token was refused, without echoing the token. */
export class InvalidTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

function reason(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return 'the access token has expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) return `the access token's "${e.claim}" claim is not valid here (${e.reason})`;
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return 'the access token is not signed with the algorithm of this gateway';
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'the access token signature does not verify';
  if (e instanceof joseErrors.JWSInvalid || e instanceof joseErrors.JWTInvalid) return 'the access token is malformed';
  return 'the access token is not valid';
}

/**
 * Verifies signature (only our key, only our algorithm: `none` and every other alg are
 * refused), type, issuer, audience and expiry. Throws InvalidTokenError.
 */
export async function verifyAccessToken(keys: SigningKeys, settings: TokenSettings, token: string): Promise<AccessTokenClaims> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keys.publicKey, {
      algorithms: [keys.alg],
      issuer: settings.issuer,
      audience: settings.audience,
      typ: ACCESS_TOKEN_TYPE,
      requiredClaims: ['exp', 'iat', 'sub', 'jti'],
      clockTolerance: 5,
    }));
  } catch (e) {
    throw new InvalidTokenError(reason(e));
  }
  if (typeof payload.scope !== 'string' || typeof payload.client_id !== 'string' || payload.client_id !== payload.sub) {
    throw new InvalidTokenError('the access token lacks the scope or client_id claim');
  }
  if (payload.patient !== undefined && typeof payload.patient !== 'string') {
    throw new InvalidTokenError('the access token has an invalid patient claim');
  }
  if (payload.institution !== undefined && typeof payload.institution !== 'string') {
    throw new InvalidTokenError('the access token has an invalid institution claim');
  }
  return payload as AccessTokenClaims;
}
