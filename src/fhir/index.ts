/**
 * The FHIR folder's public surface: services built once at start, and the Fastify plugin that
 * serves them under /fhir.
 */
import type { FastifyInstance } from 'fastify';
import type { CapabilityStatement } from '@medplum/fhirtypes';
import type { Config } from '../config.js';
import type { Db } from '../store/index.js';
import { queryFromString } from '../store/search/index.js';
import { parseJsonBody } from './json-body.js';
import { loadBaseDefinitions } from './definitions.js';
import { Repository } from './repository.js';
import { buildCapabilityStatement } from './capability.js';
import { registerRestRoutes, FHIR_JSON } from './routes.js';
import { registerOperationRoutes, OPERATIONS } from './operations/index.js';
import { createValidator, type Validator } from './validation.js';
import { loadTerminology, registerTerminologyMetrics, type Terminology } from '../terminology/index.js';
import { createSubscriptionOutbox, type SubscriptionOutbox } from '../subscriptions/index.js';
import { createIdentityHook } from '../mpi/index.js';
import { createConsentGuard } from '../ehr/index.js';
import { createReferralHook, LevelRules } from '../referral/index.js';

export { Repository } from './repository.js';
export { SYSTEM_CONTEXT, type RequestContext } from './context.js';
export type { WriteRequest, WriteResult, WorkflowHook, WorkflowWrite } from './write-path.js';
export { processBundle } from './bundle.js';
export { FHIR_JSON } from './routes.js';
export { findReferences } from './references.js';

export interface FhirServices {
  readonly repository: Repository;
  readonly validator: Validator;
  readonly capability: CapabilityStatement;
  /** ConceptMaps of the community, loaded once; shared by $translate and the feed mappings. */
  readonly terminology: Terminology;
  /** Subscription matching inside every write transaction; tells the dispatcher of commits. */
  readonly subscriptions: SubscriptionOutbox;
}

export const SERVER_VERSION = '0.1.0';

/** Loads definitions and profiles and builds the repository. A bad profile fails here, at start. */
export async function createFhirServices(config: Config, db: Db): Promise<FhirServices> {
  loadBaseDefinitions();
  const validator = await createValidator(config.profilesDir);
  const terminology = await loadTerminology(config.terminologyDir);
  const subscriptions = await createSubscriptionOutbox(config);
  const repository = new Repository({
    db,
    validator,
    hooks: subscriptions,
    search: { baseUrl: `${config.baseUrl}/fhir`, defaultCount: config.defaultPageSize, maxCount: config.maxPageSize, maxIncludes: config.maxIncludes },
    identity: createIdentityHook({ autoLink: config.mpiAutoLinkWeight, review: config.mpiReviewWeight }),
    consent: createConsentGuard(),
    workflow: createReferralHook({ rules: LevelRules.load(config.referralLevelsFile) }),
  });
  const capability = buildCapabilityStatement({ version: SERVER_VERSION, baseUrl: config.baseUrl, operations: OPERATIONS, profiles: validator.profiles });
  return { repository, validator, capability, terminology, subscriptions };
}

export interface FhirPluginOptions {
  readonly config: Config;
  readonly services: FhirServices;
  /** Routes of other folders served under /fhir with its parsers and errors (their operations). */
  readonly extensions?: readonly ((app: FastifyInstance) => Promise<void>)[];
}

/** JSON bodies go through one strict parser (json-body.ts); forms are search parameters. */
function registerParsers(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(['application/json', 'application/fhir+json', 'application/json-patch+json'], { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, queryFromString(body as string));
  });
}

export async function fhirPlugin(app: FastifyInstance, opts: FhirPluginOptions): Promise<void> {
  registerParsers(app);
  if (app.metrics) registerTerminologyMetrics(app.metrics, opts.services.terminology);
  const capabilityJson = JSON.stringify(opts.services.capability);
  app.get('/metadata', { config: { interaction: 'capabilities' } }, async (_req, reply) => {
    return reply.header('content-type', FHIR_JSON).send(capabilityJson);
  });
  await registerOperationRoutes(app, { config: opts.config, services: opts.services });
  for (const extension of opts.extensions ?? []) await extension(app);
  await registerRestRoutes(app, { config: opts.config, repository: opts.services.repository });
}
