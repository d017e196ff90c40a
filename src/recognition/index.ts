/**
 * Mutual recognition of test results (检查检验结果互认): the catalogue, the qualification history
 * of institutions, $recognize and its CDS Hooks service, decisions and statistics.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { Db } from '../store/index.js';
import type { FhirServices } from '../fhir/index.js';
import { standardCodings } from '../terminology/index.js';
import { Catalogue } from './catalogue.js';
import { RecognitionService } from './service.js';
import { cdsHooksRoutes } from './cds-hooks.js';
import { qualificationRoutes, recognitionOperationRoutes } from './routes.js';

export { Catalogue, CatalogueError, type CatalogueItem, type CatalogueVersion } from './catalogue.js';
export { RecognitionService, RECOGNISED_TAG, REPEAT_REASONS, today } from './service.js';
export { recognize, addDays, institutionsByUscc, REASON_SYSTEM, ITEM_SYSTEM, type Reason, type RecognizeAnswer } from './recognize.js';
export { RECOGNITION_OPERATIONS } from './definitions.js';
export { CDS_SERVICES } from './cds-hooks.js';

export interface Recognition {
  readonly service: RecognitionService;
  /** Mounted in the /fhir scope: $recognize, $recognition-decision, $recognition-stats. */
  readonly fhirRoutes: (app: FastifyInstance) => Promise<void>;
  /** Mount at /recognition: the qualification history. */
  readonly routes: (app: FastifyInstance) => Promise<void>;
  /** Mount at /cds-services. */
  readonly cdsRoutes: (app: FastifyInstance) => Promise<void>;
}

/** Loads the catalogue (a bad file stops start-up) and builds the service and its routes. */
export function createRecognition(config: Pick<Config, 'recognitionCatalogue' | 'baseUrl'>, deps: { db: Db; fhir: FhirServices }): Recognition {
  const catalogue = Catalogue.load(config.recognitionCatalogue);
  const service = new RecognitionService({ db: deps.db, repository: deps.fhir.repository, catalogue, standardCodings: standardCodings(deps.fhir.terminology) });
  return {
    service,
    fhirRoutes: recognitionOperationRoutes(service, deps.fhir.repository),
    routes: qualificationRoutes(service),
    cdsRoutes: cdsHooksRoutes(service, deps.db, config.baseUrl),
  };
}
