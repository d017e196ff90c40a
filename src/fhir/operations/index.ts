/**
 * Registry of FHIR operations: each lives in its own file with its OperationDefinition; this
 * file lists them (for the CapabilityStatement) and mounts their routes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { OperationDefinition, Resource } from '@medplum/fhirtypes';
import type { Config } from '../../config.js';
import type { FhirServices } from '../index.js';
import { allResourceTypes } from '../definitions.js';
import { restContext, FHIR_JSON } from '../routes.js';
import { GatewayError } from '../../errors.js';
import { assertCan } from '../../auth/policy.js';
import { OPERATION_DEFINITION as VALIDATE_DEFINITION, runValidate } from './validate.js';
import { OPERATION_DEFINITION as TRANSLATE_DEFINITION, registerTranslateRoutes } from './translate.js';
import { RECOGNITION_OPERATIONS } from '../../recognition/definitions.js';
import { REFERRAL_STATS_DEFINITION } from '../../referral/routes.js';
import { MATCH_DEFINITION, PIX_DEFINITION, registerMpiRoutes } from './mpi.js';
import { ACCESS_LOG_DEFINITION, EVERYTHING_DEFINITION, SUMMARY_DEFINITION, registerEverythingRoutes } from './everything.js';
import { LINK_DEFINITION, MERGE_DEFINITION, UNLINK_DEFINITION, UNMERGE_DEFINITION, registerMergeRoutes } from './merge.js';
import { READING_OPERATIONS } from '../../reading/definitions.js';
import { UPLOAD_STATS_DEFINITION } from '../../upload-stats/stats.js';

export interface OperationEntry {
  readonly definition: OperationDefinition;
  /** Resource types the operation applies to; empty for system-level only. */
  readonly types: readonly string[];
}

export const OPERATIONS: readonly OperationEntry[] = [
  { definition: VALIDATE_DEFINITION, types: allResourceTypes() },
  { definition: TRANSLATE_DEFINITION, types: ['ConceptMap'] },
  // Served by the recognition folder (its routes are mounted by app.ts beside these).
  ...RECOGNITION_OPERATIONS,
  // Served by the referral folder.
  { definition: REFERRAL_STATS_DEFINITION, types: [] },
  { definition: PIX_DEFINITION, types: ['Patient'] },
  { definition: MATCH_DEFINITION, types: ['Patient'] },
  { definition: EVERYTHING_DEFINITION, types: ['Patient'] },
  { definition: ACCESS_LOG_DEFINITION, types: ['Patient'] },
  { definition: SUMMARY_DEFINITION, types: ['Patient'] },
  { definition: MERGE_DEFINITION, types: ['Patient'] },
  { definition: UNMERGE_DEFINITION, types: ['Patient'] },
  { definition: UNLINK_DEFINITION, types: ['Person'] },
  { definition: LINK_DEFINITION, types: ['Person'] },
  // Served by the reading folder.
  ...READING_OPERATIONS,
  { definition: UPLOAD_STATS_DEFINITION, types: [] },
];

/** `profile` and `mode` may come as URL parameters as well as in a Parameters body. */
function paramsOf(req: FastifyRequest): { profile?: string; mode?: string } {
  const q = req.query as Record<string, string | string[] | undefined>;
  const one = (k: string) => {
    const v = q[k];
    return Array.isArray(v) ? v[0] : v;
  };
  return { ...(one('profile') ? { profile: one('profile') } : {}), ...(one('mode') ? { mode: one('mode') } : {}) };
}

/** The resource inside the body (bare or as the `resource` parameter) must be of the URL's type. */
function checkType(body: Resource, type: string): void {
  const inner = body.resourceType === 'Parameters' ? body.parameter?.find((p) => p.name === 'resource')?.resource : body;
  if (inner && inner.resourceType !== type) {
    throw new GatewayError('GW_ERR_INVALID_RESOURCE', `$validate on ${type} was given a ${inner.resourceType}`, { expression: 'resourceType' });
  }
}

function bodyOf(req: FastifyRequest): Resource | undefined {
  const b = req.body as Resource | undefined;
  if (b === undefined || b === null) return undefined;
  if (typeof b !== 'object' || Array.isArray(b) || typeof b.resourceType !== 'string') {
    throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The body must be a FHIR resource or a Parameters resource', { expression: 'body' });
  }
  return b;
}

export async function registerOperationRoutes(
  app: FastifyInstance,
  deps: { config: Config; services: FhirServices },
): Promise<void> {
  const { repository, validator } = deps.services;
  await registerTranslateRoutes(app, { terminology: deps.services.terminology });
  await registerMpiRoutes(app, { config: deps.config, db: repository.db });
  await registerMergeRoutes(app, { repository });
  await registerEverythingRoutes(app, { config: deps.config, db: repository.db, guard: repository.consent });
  const resolver = async (reference: string): Promise<Resource | undefined> => {
    const [type, id] = reference.split('/');
    try {
      const row = await repository.read(type, id, { channel: 'system', clientId: 'gateway' });
      return JSON.parse(row.content as string) as Resource;
    } catch {
      return undefined;
    }
  };

  app.post<{ Params: { type: string } }>('/:type/$validate', { config: { interaction: 'operation' } }, async (req, reply) => {
    const body = bodyOf(req);
    // Validating reveals nothing stored, but it is still an interaction on the type: read rights.
    assertCan(restContext(req), req.params.type, 'r');
    if (!body) throw new GatewayError('GW_ERR_INVALID_RESOURCE', '$validate needs a resource in the body', { expression: 'body' });
    checkType(body, req.params.type);
    const outcome = await runValidate(validator, body, paramsOf(req), resolver);
    return reply.code(200).header('content-type', FHIR_JSON).send(outcome);
  });
  const instance = async (req: FastifyRequest<{ Params: { type: string; id: string } }>) => {
    const stored = await repository.read(req.params.type, req.params.id, restContext(req));
    const body = bodyOf(req) ?? (JSON.parse(stored.content as string) as Resource);
    checkType(body, req.params.type);
    return runValidate(validator, body, paramsOf(req), resolver);
  };
  app.post<{ Params: { type: string; id: string } }>('/:type/:id/$validate', { config: { interaction: 'operation' } }, async (req, reply) => {
    return reply.code(200).header('content-type', FHIR_JSON).send(await instance(req));
  });
  app.get<{ Params: { type: string; id: string } }>('/:type/:id/$validate', { config: { interaction: 'operation' } }, async (req, reply) => {
    return reply.code(200).header('content-type', FHIR_JSON).send(await instance(req));
  });
}
