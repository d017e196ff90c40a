/**
 * Entry point: read config, open the store, load the demo community on first start, listen,
 * and shut down gracefully (finish in-flight requests, close the database) on SIGTERM/SIGINT.
 */
import { loadConfig, ConfigError, type Config } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { openStore, type Db } from './store/index.js';
import { createFhirServices, processBundle, SYSTEM_CONTEXT, type FhirServices } from './fhir/index.js';
import { loadDemoCommunity, readDemoQualifications, sendDemoTraffic } from './demo/index.js';
import { buildApp } from './app.js';
import { maintainAuditPartitions, prepareAudit } from './audit/index.js';
import { pruneWorkingTables } from './ops/retention.js';
import { startMllpServer } from './ingest/mllp/index.js';
import { Redis } from 'ioredis';

/** Loads the demo community into an empty store; true when it did. */
async function loadDemoIfEmpty(db: Db, fhir: FhirServices, logger: Logger): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM resource LIMIT 1');
  if (rows.length > 0) return false;
  await loadDemoCommunity((bundle) => processBundle(fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
  logger.info('demo county community loaded');
  return true;
}

export interface Running {
  /** The address actually bound (PORT=0 picks a free port). */
  readonly address: string;
  /** The MLLP port bound, when MLLP is on. */
  readonly mllpPort?: number;
  stop(): Promise<void>;
}

export async function start(config: Config, logger: Logger): Promise<Running> {
  const db = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolMax: config.dbPoolMax });
  logger.info({ store: db.kind }, 'store opened');
  const audit = await prepareAudit(db, config);
  logger.info({ hash: audit.alg, chains: audit.chains }, 'audit trail ready');
  // Keep next month's audit partition ready and drop months past retention, once a day; prune
  // the working tables (delivered events, old control ids, closed dead letters) at start and daily.
  const prune = () =>
    pruneWorkingTables(db, {
      subscriptionEventDays: config.subscriptionEventRetentionDays,
      hl7ProcessedDays: config.hl7DuplicateWindowDays,
      deadLetterDays: config.deadLetterRetentionDays,
    }).then(
      (pruned) => logger.info({ pruned }, 'working tables pruned'),
      (err: unknown) => logger.error({ err }, 'pruning the working tables failed'),
    );
  await prune();
  const maintenance = setInterval(() => {
    maintainAuditPartitions(db, { retentionMonths: config.auditRetentionMonths }).catch((err: unknown) =>
      logger.error({ err }, 'audit partition maintenance failed'),
    );
    void prune();
  }, 24 * 3_600_000);
  maintenance.unref();
  const fhir = await createFhirServices(config, db);
  const demoLoaded = config.demoData ? await loadDemoIfEmpty(db, fhir, logger) : false;
  // Commands fail fast while Redis is away (no offline queue); at start, wait until it answers.
  const redis = config.redisUrl ? new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: false, lazyConnect: true }) : undefined;
  redis?.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection problem'));
  if (redis) {
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new Error(`REDIS_URL is set but Redis does not answer: ${(err as Error).message}`, { cause: err });
    }
    logger.info({ redis: new URL(config.redisUrl as string).host }, 'redis connected');
  }
  const app = await buildApp(config, { db, logger, fhir, redis });
  if (demoLoaded) {
    for (const q of await readDemoQualifications()) await app.recognition.service.qualify(q, { ...SYSTEM_CONTEXT, channel: 'demo' });
    // Sample traffic through the gateway's own doors, so that the console has something to show.
    const traffic = await sendDemoTraffic(app);
    logger.info(traffic, 'demo traffic sent');
  }
  const address = await app.listen({ host: config.host, port: config.port });
  logger.info({ listen: address, fhirBase: `${config.baseUrl}/fhir` }, 'gateway listening');
  // HL7 v2 over MLLP: each frame goes through the same pipeline as POST /ingest/hl7v2; the ACK
  // is sent only after the message's transaction has committed.
  const mllp =
    config.mllpPort === 0
      ? undefined
      : await startMllpServer({
          host: config.mllpHost,
          port: config.mllpPort,
          tls: config.mllpTlsKeyFile && config.mllpTlsCertFile ? { keyFile: config.mllpTlsKeyFile, certFile: config.mllpTlsCertFile } : undefined,
          maxFrameBytes: config.mllpMaxFrameBytes,
          idleTimeoutMs: config.mllpIdleTimeoutMs,
          handler: async (frame, conn) =>
            (await app.ingest.pipeline.handleMessage(frame, { channel: 'mllp', remoteAddress: conn.remoteAddress, localPort: conn.localPort })).acks,
          logger: logger.child({ component: 'mllp' }),
        });
  if (mllp) logger.info({ mllpPort: mllp.port }, 'MLLP listening');
  // Notifications waiting in the outbox (from before a restart too) are delivered from now on.
  await app.subscriptions.start();
  logger.info({ queue: app.subscriptions.dispatcher.queue.kind }, 'subscription dispatcher started');
  return {
    address,
    mllpPort: mllp?.port,
    async stop() {
      clearInterval(maintenance);
      // Stop taking messages first; frames already received are acknowledged before closing.
      await mllp?.close();
      // Finish the notifications being sent and release their leases; the rest wait in the outbox.
      await app.subscriptions.stop();
      await app.close();
      redis?.disconnect();
      await db.close();
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = createLogger(config.logLevel);
  let running: Running;
  try {
    running = await start(config, logger);
  } catch (e) {
    logger.fatal({ err: e }, 'gateway failed to start');
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/server.ts') || process.argv[1]?.endsWith('/server.js')) {
  void main();
}
