/**
 * The ingest folder's public surface: the HL7 v2 pipeline shared by MLLP and HTTP, the senders
 * registry, the dead-letter store and the /ingest routes.
 *
 * Wiring (server.ts / app.ts):
 *   const map = engineMap(loadMappings('mappings/hl7v2'), translate);
 *   const ingest = await createIngest(config, { db, fhir, map, metrics: app.metrics, logger });
 *   await app.register(ingestRoutes, { prefix: '/ingest', pipeline: ingest.pipeline, db });
 *   // MLLP: (bytes, socket) => ingest.pipeline.handleMessage(bytes, { channel: 'mllp', remoteAddress, localPort })
 *   // shutdown: ingest.stop()
 */
import type { Config } from '../config.js';
import type { FhirServices } from '../fhir/index.js';
import type { Db } from '../store/index.js';
import type { Registry } from 'prom-client';
import { IngestPipeline, type Logger, type MapFn, type ParseFn } from './pipeline.js';
import { loadSenders, type SenderRegistry } from './senders.js';
import type { AckBuilder } from './envelope.js';
import { mapMessage, type MapContext, type MappingRegistry } from './hl7v2/mapping/index.js';

export { IngestPipeline, classify, RETRY_TEXT, type PipelineOptions, type PipelineResult, type Outcome, type Failure, type MapFn, type Mapped, type ParseFn, type MappingContext, type ReplayResult } from './pipeline.js';
export { loadSenders, parseSenders, identifySender, isRefusal, SendersFileError, DEMO_SENDERS_URL, type Sender, type SenderRegistry, type SenderCharset, type Origin, type SenderRefusal } from './senders.js';
export {
  DeadLetterSpool,
  getDeadLetter,
  listDeadLetters,
  insertDeadLetter,
  discardDeadLetter,
  DEAD_LETTER_STATUSES,
  type DeadLetter,
  type DeadLetterInput,
  type DeadLetterFilter,
  type DeadLetterStatus,
} from './dead-letters.js';
export { readEnvelope, decodeRaw, hl7Ack, type Envelope, type AckBuilder, type AckRequest, type AckError, type AckCode } from './envelope.js';
export { dicomRoutes, storeDicom, readPart10, readDicomJson, accessionSystem, studyCondition, DICOM_UID_SYSTEM, DICOM_MEDIA_TYPE, DICOM_JSON_MEDIA_TYPE, type DicomRecord } from './dicom/index.js';
export { extractRoutes, loadExtractMappings, runExtract, checkRow, getJob, extractSystem, ExtractMappingError, BATCH_ROWS, type ExtractMapping, type Job } from './extract/index.js';
export { ingestRoutes, canManageDeadLetters, HL7_MEDIA_TYPE, type IngestRoutesOptions } from './routes.js';

/** The mapping engine as the pipeline's map function: the sender's institution, its MRN system, its site overrides. */
export function engineMap(mappings: MappingRegistry, translate?: MapContext['translate']): MapFn {
  return (message, ctx) => mapMessage(message, { sender: { institution: ctx.institution }, mappings, ...(translate ? { translate } : {}) });
}

export interface IngestDeps {
  readonly db: Db;
  readonly fhir: Pick<FhirServices, 'repository' | 'validator'>;
  /** Message → transaction Bundle (the mapping engine, bound to its mappings and terminology). */
  readonly map: MapFn;
  readonly parse?: ParseFn;
  readonly ack?: AckBuilder;
  /** The app's registry (`app.metrics`). */
  readonly metrics?: Registry;
  readonly logger?: Logger;
  /** Senders already loaded; default read from HL7_SENDERS_FILE (or the demo senders). */
  readonly senders?: SenderRegistry;
  /** How often spooled dead letters are moved into the database; default 30 s, 0: never by timer. */
  readonly drainIntervalMs?: number;
  /** Messages processed at once (see PipelineOptions.maxConcurrent). */
  readonly maxConcurrent?: number;
}

export interface Ingest {
  readonly pipeline: IngestPipeline;
  readonly senders: SenderRegistry;
  /** Stops the spool timer (the spool itself stays on disk for the next start). */
  stop(): void;
}

/** Loads the senders (a bad file throws SendersFileError: start-up fails) and builds the pipeline. */
export async function createIngest(config: Pick<Config, 'hl7SendersFile' | 'hl7SpoolDir'>, deps: IngestDeps): Promise<Ingest> {
  const senders = deps.senders ?? (await loadSenders(config.hl7SendersFile));
  const pipeline = new IngestPipeline({
    db: deps.db,
    fhir: deps.fhir,
    senders,
    map: deps.map,
    parse: deps.parse,
    ack: deps.ack,
    spoolDir: config.hl7SpoolDir,
    metrics: deps.metrics,
    logger: deps.logger,
    maxConcurrent: deps.maxConcurrent,
  });
  const drain = () => pipeline.drainSpool().catch((err: unknown) => deps.logger?.warn({ err: (err as Error).message }, 'HL7 spool not drained yet'));
  void drain();
  const interval = deps.drainIntervalMs ?? 30_000;
  const timer = interval > 0 ? setInterval(drain, interval) : undefined;
  timer?.unref();
  return { pipeline, senders, stop: () => clearInterval(timer) };
}
