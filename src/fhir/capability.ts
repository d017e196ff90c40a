/**
 * The CapabilityStatement, generated from what the server really has: the resource types it
 * stores, the search parameters indexed for each, the interactions its routes implement, the
 * operations registered and the profiles loaded. Built once at start.
 */
import type { CapabilityStatement, CapabilityStatementRestResource, OperationDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { allResourceTypes, searchParametersOf } from './definitions.js';
import { indexedParams } from '../store/index.js';

/** Interactions implemented by routes.ts for every resource type. */
export const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const;
export const SYSTEM_INTERACTIONS = ['transaction', 'batch', 'search-system', 'history-system'] as const;
/** Search result parameters the search engine implements for every type. */
export const RESULT_PARAMETERS = ['_count', '_sort', '_include', '_revinclude', '_summary', '_total', '_elements', '_has'] as const;

export interface CapabilityInputs {
  readonly version: string;
  readonly baseUrl: string;
  /** Operations with the resource types they apply to (empty = system level). */
  readonly operations: readonly { definition: OperationDefinition; types: readonly string[] }[];
  readonly profiles: readonly StructureDefinition[];
}

export function buildCapabilityStatement(input: CapabilityInputs): CapabilityStatement {
  const resource: CapabilityStatementRestResource[] = allResourceTypes().map((type) => {
    const indexed = new Set(indexedParams(type).map((p) => p.code));
    const searchParam = Object.entries(searchParametersOf(type))
      .filter(([code]) => indexed.has(code) || code === '_id' || code === '_lastUpdated')
      .map(([code, sp]) => ({ name: code, type: sp.type as 'token', definition: sp.url, ...(sp.description ? { documentation: sp.description.slice(0, 200) } : {}) }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const profiles = input.profiles.filter((p) => p.type === type && p.url).map((p) => p.url as string);
    const operation = input.operations
      .filter((o) => o.types.includes(type))
      .map((o) => ({ name: o.definition.code as string, definition: o.definition.url as string }));
    return {
      type: type as CapabilityStatementRestResource['type'],
      ...(profiles.length ? { supportedProfile: profiles } : {}),
      interaction: TYPE_INTERACTIONS.map((code) => ({ code })),
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalRead: 'not-supported',
      conditionalUpdate: true,
      conditionalDelete: 'single',
      referencePolicy: ['literal', 'local'],
      searchInclude: [...new Set(indexedParams(type).filter((p) => p.table === 'sp_reference').map((p) => `${type}:${p.code}`))],
      searchRevInclude: [],
      searchParam,
      ...(operation.length ? { operation } : {}),
    };
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    name: 'CountyHieGateway',
    title: 'County health information exchange gateway',
    publisher: 'County medical community information centre',
    software: { name: 'county-hie-gateway', version: input.version },
    implementation: { description: 'FHIR R4 gateway of the county medical community', url: `${input.baseUrl}/fhir` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        resource,
        interaction: SYSTEM_INTERACTIONS.map((code) => ({ code })),
        searchParam: RESULT_PARAMETERS.map((name) => ({ name, type: name === '_count' ? ('number' as const) : ('special' as const) })),
        operation: input.operations
          .filter((o) => o.types.length === 0 || o.definition.system)
          .map((o) => ({ name: o.definition.code as string, definition: o.definition.url as string })),
      },
    ],
  };
}
