/**
 * A gateway app on an isolated test database, driven with app.inject().
 */
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { buildApp } from '../../src/app.js';
import { createFhirServices, type FhirServices } from '../../src/fhir/index.js';
import { openTestDb, type Backend, type TestDb } from './db.js';

export interface TestApp {
  readonly app: FastifyInstance;
  readonly tdb: TestDb;
  readonly config: Config;
  readonly fhir: FhirServices;
  close(): Promise<void>;
}

export const TEST_BASE = 'http://gateway.test';

export async function createTestApp(backend: Backend, env: Record<string, string> = {}): Promise<TestApp> {
  const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent', ...env });
  const tdb = await openTestDb(backend);
  const fhir = await createFhirServices(config, tdb.db);
  const app = await buildApp(config, { db: tdb.db, logger: createLogger('silent'), fhir });
  await app.ready();
  return {
    app,
    tdb,
    config,
    fhir,
    async close() {
      await app.close();
      await tdb.close();
    },
  };
}

export const FHIR_HEADERS = { 'content-type': 'application/fhir+json' };
