/**
 * A gateway app on an isolated test database, driven with app.inject().
 */
import type { FastifyInstance, InjectOptions } from 'fastify';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { Redis } from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { buildApp } from '../../src/app.js';
import { prepareAudit } from '../../src/audit/index.js';
import { createFhirServices, type FhirServices } from '../../src/fhir/index.js';
import { openTestDb, type Backend, type TestDb } from './db.js';

export interface TestApp {
  /** The app; its inject() sends the admin client's token unless the request sets authorization. */
  readonly app: FastifyInstance;
  /** inject() without any token. */
  readonly anonymous: FastifyInstance['inject'];
  /** A bearer token for a demo client (demo/clients.json), e.g. `county-his`, `auditor`. */
  token(clientId: string, scopes?: readonly string[]): Promise<string>;
  readonly tdb: TestDb;
  readonly config: Config;
  readonly fhir: FhirServices;
  close(): Promise<void>;
}

export const TEST_BASE = 'http://gateway.test';

export async function createTestApp(backend: Backend, env: Record<string, string> = {}, deps: { redis?: Redis } = {}): Promise<TestApp> {
  // Each app spools undeliverable HL7 messages in a directory of its own.
  const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-spool-'));
  const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent', HL7_SPOOL_DIR: spoolDir, ...env });
  const tdb = await openTestDb(backend);
  await prepareAudit(tdb.db, config);
  const fhir = await createFhirServices(config, tdb.db);
  const app = await buildApp(config, { db: tdb.db, logger: createLogger('silent'), fhir, redis: deps.redis });
  await app.ready();
  const admin = await app.auth.mint('admin');
  const raw = app.inject.bind(app);
  const withToken = (opts: InjectOptions | string): InjectOptions => {
    const o: InjectOptions = typeof opts === 'string' ? { url: opts } : opts;
    const headers = { ...(o.headers ?? {}) };
    if (!('authorization' in headers)) headers.authorization = `Bearer ${admin}`;
    return { ...o, headers };
  };
  (app as unknown as { inject: (o: InjectOptions | string) => unknown }).inject = (opts: InjectOptions | string) => raw(withToken(opts));
  return {
    app,
    anonymous: raw as FastifyInstance['inject'],
    token: (clientId, scopes) => app.auth.mint(clientId, scopes),
    tdb,
    config,
    fhir,
    async close() {
      await app.close();
      await tdb.close();
      rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}

export const FHIR_HEADERS = { 'content-type': 'application/fhir+json' };

/** Creates a resource over REST as the client of `headers` (the admin without); anything but 201 throws with the answer. */
export async function createOverRest<T extends Resource>(ta: TestApp, resource: T, headers: Record<string, string> = {}): Promise<T & { id: string }> {
  const r = await ta.app.inject({ method: 'POST', url: `/fhir/${resource.resourceType}`, headers: { ...FHIR_HEADERS, ...headers }, payload: resource });
  if (r.statusCode !== 201) throw new Error(r.body);
  return r.json<T & { id: string }>();
}

/** `Type/id` of each resource of a Bundle, in order. */
export const entryRefs = (b: Bundle): string[] => (b.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
