/**
 * Client secrets are stored only as scrypt hashes with a per-client salt:
 *
 *   scrypt$<N>$<r>$<p>$<salt, base64url>$<derived key, base64url>
 *
 * `scripts/hash-secret.ts` prints one for a new client. Verification recomputes the key with
 * the stored parameters and compares in constant time.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const DEFAULT_N = 16384;
const DEFAULT_R = 8;
const DEFAULT_P = 1;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

/** Largest accepted cost, so that a hash in the clients file cannot stall the server. */
const MAX_N = 1 << 20;
const MAX_RP = 64;

export const SECRET_HASH_PATTERN = '^scrypt\\$[0-9]+\\$[0-9]+\\$[0-9]+\\$[A-Za-z0-9_-]{16,}\\$[A-Za-z0-9_-]{32,}$';

interface ParsedHash {
  readonly n: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function scrypt(secret: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(secret, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function memoryFor(n: number, r: number): number {
  return 128 * n * r * 2;
}

/** Parses a stored hash; returns a description of the problem when it is not usable. */
export function parseSecretHash(hash: string): ParsedHash | string {
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return 'is not of the form scrypt$N$r$p$salt$hash';
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (!Number.isSafeInteger(n) || n < 2 || n > MAX_N || (n & (n - 1)) !== 0) return `has N=${parts[1]}; expected a power of two up to ${MAX_N}`;
  if (!Number.isSafeInteger(r) || r < 1 || r > MAX_RP) return `has r=${parts[2]}; expected 1..${MAX_RP}`;
  if (!Number.isSafeInteger(p) || p < 1 || p > MAX_RP) return `has p=${parts[3]}; expected 1..${MAX_RP}`;
  const salt = Buffer.from(parts[4], 'base64url');
  const key = Buffer.from(parts[5], 'base64url');
  if (salt.length < 8) return 'has a salt shorter than 8 bytes';
  if (key.length < 16) return 'has a derived key shorter than 16 bytes';
  return { n, r, p, salt, key };
}

/** Hashes a secret for the clients file. */
export async function hashSecret(secret: string, options: { n?: number; r?: number; p?: number } = {}): Promise<string> {
  const n = options.n ?? DEFAULT_N;
  const r = options.r ?? DEFAULT_R;
  const p = options.p ?? DEFAULT_P;
  const salt = randomBytes(SALT_LENGTH);
  const key = await scrypt(secret, salt, KEY_LENGTH, { N: n, r, p, maxmem: memoryFor(n, r) });
  return `scrypt$${n}$${r}$${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** A hash of a random secret, checked against when the client is unknown so that timing does not tell. */
let dummyHash: Promise<string> | undefined;

/**
 * True when `secret` matches `hash`. With `hash` undefined (unknown client, or a client without
 * a secret) the same work is done against a dummy hash and false is returned.
 */
export async function verifySecret(secret: string, hash: string | undefined): Promise<boolean> {
  dummyHash ??= hashSecret(randomBytes(24).toString('base64url'));
  const parsed = parseSecretHash(hash ?? (await dummyHash));
  if (typeof parsed === 'string') return false;
  const key = await scrypt(secret, parsed.salt, parsed.key.length, { N: parsed.n, r: parsed.r, p: parsed.p, maxmem: memoryFor(parsed.n, parsed.r) });
  const equal = timingSafeEqual(key, parsed.key);
  return equal && hash !== undefined;
}
