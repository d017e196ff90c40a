/**
 * A small Fastify app with the auth plugin and dummy routes, the demo clients plus two
 * private_key_jwt clients whose keys the tests hold, and helpers to call the token endpoint.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { loadConfig, type Config } from '../../src/config.js';
import type { Queryable } from '../../src/store/index.js';
import { authPlugin, DEMO_CLIENTS_URL, loadSigningKeys, parseClients, type ClientRegistry, type SigningKeys } from '../../src/auth/index.js';

export const TEST_BASE = 'http://gateway.test';
export const TOKEN_URL = `${TEST_BASE}/auth/token`;
export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

export interface ClientKey {
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly kid: string;
  readonly alg: 'RS384' | 'ES384';
}

export async function clientKey(alg: 'RS384' | 'ES384', kid: string): Promise<ClientKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, kid, alg };
}

export interface AuthFixture {
  readonly config: Config;
  readonly clients: ClientRegistry;
  readonly keys: SigningKeys;
  /** Keys of `lis-rs384` (RS384) and `pacs-es384` (ES384), both private_key_jwt clients. */
  readonly rsKey: ClientKey;
  readonly esKey: ClientKey;
}

/** Demo clients plus `lis-rs384` and `pacs-es384`, authenticating with private_key_jwt. */
export async function authFixture(): Promise<AuthFixture> {
  const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent' });
  const rsKey = await clientKey('RS384', 'lis-key-1');
  const esKey = await clientKey('ES384', 'pacs-key-1');
  const demo = JSON.parse(await readFile(DEMO_CLIENTS_URL, 'utf8')) as { clients: unknown[] };
  const clients = await parseClients(
    {
      clients: [
        ...demo.clients,
        { clientId: 'lis-rs384', name: 'County LIS', institution: '1233042447101234XX', scopes: ['system/Observation.cruds', 'system/DiagnosticReport.cruds'], jwks: { keys: [rsKey.publicJwk] } },
        { clientId: 'pacs-es384', name: 'County PACS', institution: '1233042447101234XX', scopes: ['system/ImagingStudy.cruds'], jwks: { keys: [esKey.publicJwk] } },
      ],
    },
    'test clients',
  );
  return { config, clients, keys: await loadSigningKeys(undefined), rsKey, esKey };
}

/** An app with the plugin, public routes and a protected route echoing request.auth. */
export async function authApp(f: AuthFixture, db: Queryable): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  await app.register(authPlugin, { config: f.config, db, clients: f.clients, keys: f.keys });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => ({ status: 'ready' }));
  await app.register(
    async (fhir) => {
      fhir.get('/metadata', async () => ({ resourceType: 'CapabilityStatement' }));
      fhir.get('/Patient', async (req) => ({ auth: req.auth }));
      fhir.post('/Patient', async (req) => ({ auth: req.auth }));
    },
    { prefix: '/fhir' },
  );
  await app.ready();
  return app;
}

/** A database stand-in for tests that never reach the token endpoint's replay check. */
export const NO_DB: Queryable = {
  async query() {
    throw new Error('no database in this test');
  },
  async exec() {
    throw new Error('no database in this test');
  },
};

export interface AssertionOptions {
  iss?: string;
  sub?: string;
  aud?: string;
  /** Seconds from now. */
  exp?: number;
  jti?: string | null;
  alg?: 'RS384' | 'ES384';
  kid?: string;
}

/** A client assertion signed with `key`; options bend one claim at a time. */
export async function assertion(key: ClientKey, clientId: string, o: AssertionOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: o.alg ?? key.alg, kid: o.kid ?? key.kid, typ: 'JWT' })
    .setIssuer(o.iss ?? clientId)
    .setSubject(o.sub ?? clientId)
    .setAudience(o.aud ?? TOKEN_URL)
    .setIssuedAt(now)
    .setExpirationTime(now + (o.exp ?? 60));
  if (o.jti !== null) jwt.setJti(o.jti ?? randomUUID());
  return jwt.sign(key.privateKey);
}

/** An unsigned JWT (`alg: none`) with the given header extras and claims. */
export function unsignedJwt(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', ...header })}.${b64(claims)}.`;
}

export function form(params: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) p.append(k, v);
  return p.toString();
}

export function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export async function postToken(app: FastifyInstance, params: Record<string, string | undefined>, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/auth/token', headers: { ...FORM, ...headers }, payload: form(params) });
}
