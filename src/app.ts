/**
 * Builds the Fastify application. Never listens: server.ts does, tests use app.inject().
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import type { Db } from './store/index.js';
import { fhirPlugin, type FhirServices } from './fhir/index.js';
import { opsPlugin } from './ops/index.js';
import { hygienePlugin } from './ops/hygiene.js';
import { authPlugin } from './auth/index.js';
import { consoleRoutes } from './console/index.js';
import { auditRoutes } from './audit/index.js';
import { createIngest, dicomRoutes, engineMap, extractRoutes, ingestRoutes, loadExtractMappings, loadSenders, type Ingest, type MapFn } from './ingest/index.js';
import { loadMappings } from './ingest/hl7v2/mapping/index.js';
import { standardCodings } from './terminology/index.js';
import { createRecognition, type Recognition } from './recognition/index.js';
import { LevelRules, referralMap, referralRoutes } from './referral/index.js';
import { ReadingService, readingMap, readingRoutes } from './reading/index.js';
import { loadRequiredFields, uploadStatsRoutes } from './upload-stats/index.js';
import type { Redis } from 'ioredis';
import { outcomeOf } from './fhir/outcome.js';
import websocketPlugin from '@fastify/websocket';
import { Dispatcher, subscriptionDeliveryRoutes, subscriptionRoutes, WebsocketHub, websocketRoute, type SubscriptionService } from './subscriptions/index.js';

export interface AppDeps {
  readonly db: Db;
  readonly logger: Logger;
  /** FHIR services built once at start (repository, validator, capability statement). */
  readonly fhir: FhirServices;
  /** Shared Redis (REDIS_URL) for rate limits across instances; in process without it. */
  readonly redis?: Redis;
  /** HL7 v2 message → transaction Bundle; default the mapping engine over HL7_MAPPINGS_DIR. */
  readonly hl7Map?: MapFn;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The HL7 v2 ingest pipeline, shared by POST /ingest/hl7v2 and the MLLP listener. */
    ingest: Ingest;
    /** Mutual recognition of test results: catalogue, qualifications, $recognize, CDS Hooks. */
    recognition: Recognition;
    /** Subscription delivery (rest-hook dispatcher, websocket hub); server.ts starts it, closing the app stops it. */
    subscriptions: SubscriptionService;
  }
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    // Path parameters are FHIR ids (≤ 64 characters) and types; anything longer is refused.
    routerOptions: { maxParamLength: 500 },
    trustProxy: false,
    return503OnClosing: true,
  });

  app.setErrorHandler((err, request, reply) => {
    const { status, outcome } = outcomeOf(err);
    if (status >= 500) request.log.error({ err }, 'request failed');
    void reply.code(status).header('content-type', 'application/fhir+json; charset=utf-8').send(outcome);
  });
  app.setNotFoundHandler((request, reply) => {
    const { status, outcome } = outcomeOf(Object.assign(new Error(`No route for ${request.method} ${request.url.split('?')[0]}`), { statusCode: 404 }));
    void reply.code(status).header('content-type', 'application/fhir+json; charset=utf-8').send(outcome);
  });

  await app.register(hygienePlugin, { rateLimitMax: config.rateLimitMax, rateLimitWindowMs: config.rateLimitWindowMs, redis: deps.redis, redisKeyPrefix: config.redisKeyPrefix });
  // Every route registered after this needs a valid bearer token, but for PUBLIC_ROUTES.
  await app.register(authPlugin, { config, db: deps.db });
  await app.register(opsPlugin, { db: deps.db });
  await app.register(consoleRoutes);
  const senders = await loadSenders(config.hl7SendersFile);
  const hl7Mappings = loadMappings(config.hl7MappingsDir);
  // Referral messages (REF^I12/I13/I14, RRI^I12) join the referral workflow after mapping.
  // Reading reports (ORU^R01 answering a reading request) close the request after mapping.
  const hl7Map = readingMap(referralMap(engineMap(hl7Mappings, standardCodings(deps.fhir.terminology, { countUnmapped: true })), {
    db: deps.db,
    senders,
    rules: LevelRules.load(config.referralLevelsFile),
    tables: hl7Mappings.forSite(undefined).tables,
  }), { db: deps.db });
  const ingest = await createIngest(config, {
    db: deps.db,
    fhir: deps.fhir,
    senders,
    map: deps.hl7Map ?? hl7Map,
    metrics: app.metrics,
    logger: app.log,
    // Leave two pool connections to the HTTP API while feeds are bursting.
    maxConcurrent: Math.max(1, config.dbPoolMax - 2),
  });
  app.decorate('ingest', ingest);
  app.addHook('onClose', async () => ingest.stop());
  const extract = { db: deps.db, fhir: deps.fhir, mappings: loadExtractMappings(config.extractMappingsDir), translate: standardCodings(deps.fhir.terminology, { countUnmapped: true }) };
  const clients = app.auth.clients;
  await app.register(ingestRoutes, {
    prefix: '/ingest',
    pipeline: ingest.pipeline,
    db: deps.db,
    feeds: { senders: ingest.senders, staleMinutes: config.feedStaleMinutes, institutionOfClient: (id) => clients.get(id)?.institution },
    extract: { ...extract, client: (id: string) => clients.get(id) },
    dicom: { db: deps.db, fhir: deps.fhir, client: (id: string) => clients.get(id) },
  });
  const dispatcher = new Dispatcher({ db: deps.db, repository: deps.fhir.repository, config, logger: deps.logger.child({ component: 'subscriptions' }), metrics: app.metrics, redis: deps.redis, redisPrefix: config.redisKeyPrefix, commits: deps.fhir.subscriptions });
  const websockets = new WebsocketHub({
    db: deps.db,
    keys: app.auth.keys,
    baseUrl: config.baseUrl,
    pollMs: config.subscriptionPollMs,
    defaultHeartbeatSeconds: config.subscriptionHeartbeatSeconds,
    logger: deps.logger.child({ component: 'websocket' }),
    activate: (id) => dispatcher.setResourceStatus(id, 'active'),
  });
  const subscriptions: SubscriptionService = {
    dispatcher,
    websockets,
    async start() {
      await dispatcher.start();
      websockets.start();
    },
    async stop() {
      await websockets.stop();
      await dispatcher.stop();
    },
  };
  app.decorate('subscriptions', subscriptions);
  app.addHook('preClose', async () => subscriptions.stop());
  await app.register(websocketPlugin);
  await app.register(async (scope) => websocketRoute(scope, websockets));
  await app.register(subscriptionRoutes, { prefix: '/fhir', db: deps.db, config, websockets, dispatcher });
  await app.register(subscriptionDeliveryRoutes({ db: deps.db, config }), { prefix: '/subscriptions' });
  await app.register(dicomRoutes, { prefix: '/ingest', db: deps.db, fhir: deps.fhir });
  await app.register(extractRoutes, { prefix: '/ingest', ...extract });
  // The audit log has its own store and routes; the static /fhir/AuditEvent wins over /fhir/:type.
  await app.register(auditRoutes, { prefix: '/fhir', db: deps.db, config });
  const recognition = createRecognition(config, { db: deps.db, fhir: deps.fhir });
  app.decorate('recognition', recognition);
  await app.register(recognition.routes, { prefix: '/recognition' });
  await app.register(recognition.cdsRoutes, { prefix: '/cds-services' });
  await app.register(fhirPlugin, {
    prefix: '/fhir',
    config,
    services: deps.fhir,
    extensions: [
      recognition.fhirRoutes,
      referralRoutes(deps.db, { deadlineHours: LevelRules.load(config.referralLevelsFile).file.deadlineHours }),
      readingRoutes(new ReadingService({ db: deps.db, fhir: deps.fhir })),
      uploadStatsRoutes(deps.db, loadRequiredFields()),
    ],
  });
  return app;
}
