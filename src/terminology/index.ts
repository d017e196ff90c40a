/**
 * Terminology: ConceptMaps from local codes (per institution) to LOINC and ICD-10, loaded and
 * checked at start, looked up in memory by `$translate` and by the HL7 v2 mapping engine.
 */
import { loadConceptMaps } from './load.js';
import { Terminology } from './engine.js';

export { Terminology, SAFE_EQUIVALENCES, MAX_UNMAPPED_KEYS, OTHER_CODE, isPositive } from './engine.js';
export type { TranslationMatch, TranslateOptions, TranslateResult, StandardizeOptions, UnmappedListener } from './engine.js';
export { loadConceptMaps, parseConceptMap, checkConceptMap, TerminologyLoadError, EQUIVALENCES, CONCEPT_MAP_SCHEMA } from './load.js';
export type { Equivalence, LoadedConceptMap } from './load.js';
export { registerTerminologyMetrics, UNMAPPED_METRIC, ENTRIES_METRIC } from './metrics.js';
export {
  LOINC_SYSTEM,
  ICD10_SYSTEM,
  ICD10_CN_CLINICAL_SYSTEM,
  SNOMED_SYSTEM,
  STANDARD_SYSTEMS,
  LOCAL_DOMAINS,
  LOCAL_SYSTEM_PREFIX,
  CONCEPT_MAP_BASE,
  localCodeSystem,
  parseLocalCodeSystem,
  type LocalDomain,
} from './systems.js';

export { standardCodings, type StandardCodingsOptions } from './standard.js';

/** Loads and checks every ConceptMap of `dir` and indexes them. Throws TerminologyLoadError. */
export async function loadTerminology(dir: string): Promise<Terminology> {
  return new Terminology(await loadConceptMaps(dir));
}
