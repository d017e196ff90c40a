/**
 * The gateway's access-token signing key: from AUTH_SIGNING_KEY (a private JWK as JSON, or a
 * PKCS#8 / SEC1 / PKCS#1 PEM) so that every instance signs and verifies with the same key, or
 * generated at start when absent (tokens then die with the process).
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

/** Algorithms the gateway signs access tokens with; the key decides which one. */
export type SigningAlgorithm = 'ES256' | 'RS256';

export interface SigningKeys {
  readonly alg: SigningAlgorithm;
  /** Key id in the token header: the JWK thumbprint (RFC 7638) of the public key. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public key as a JWK, for publishing to resource servers that verify our tokens. */
  readonly publicJwk: JWK;
  /** True when the key was generated at start rather than configured. */
  readonly ephemeral: boolean;
}

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(`AUTH_SIGNING_KEY: ${message}`);
    this.name = 'SigningKeyError';
  }
}

function algorithmOf(key: KeyObject): SigningAlgorithm {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1') throw new SigningKeyError(`EC key on curve ${String(details.namedCurve)}; use P-256 (ES256)`);
    return 'ES256';
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw new SigningKeyError('RSA key shorter than 2048 bits');
    return 'RS256';
  }
  throw new SigningKeyError(`unsupported key type ${String(key.asymmetricKeyType)}; use an EC P-256 or RSA key`);
}

function parsePrivateKey(text: string): KeyObject {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as JWK;
      if (typeof jwk.d !== 'string') throw new SigningKeyError('the JWK has no private part ("d")');
      if (jwk.alg !== undefined && jwk.alg !== 'ES256' && jwk.alg !== 'RS256') throw new SigningKeyError(`JWK alg ${jwk.alg}; expected ES256 or RS256`);
      return createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
    }
    return createPrivateKey({ key: trimmed.replace(/\\n/g, '\n'), format: 'pem' });
  } catch (e) {
    if (e instanceof SigningKeyError) throw e;
    // The message never repeats the key material.
    throw new SigningKeyError(`not a private JWK (JSON) or PEM key (${(e as { code?: string }).code ?? (e as Error).name})`);
  }
}

async function build(privateKey: KeyObject, ephemeral: boolean): Promise<SigningKeys> {
  const alg = algorithmOf(privateKey);
  const publicKey = createPublicKey(privateKey);
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return Object.freeze({ alg, kid, privateKey, publicKey, publicJwk: Object.freeze({ ...publicJwk, kid, alg, use: 'sig' }), ephemeral });
}

/** Loads the configured signing key, or generates an ES256 key when `text` is undefined. */
export async function loadSigningKeys(text: string | undefined): Promise<SigningKeys> {
  if (text !== undefined && text.trim() !== '') return build(parsePrivateKey(text), false);
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return build(createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' }), true);
}

/** Generates a key for AUTH_SIGNING_KEY, as a private JWK. */
export async function generateSigningJwk(alg: SigningAlgorithm = 'ES256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg };
}
