/**
 * Code systems the terminology module maps between: the standard ones (LOINC, ICD-10 in its WHO
 * and Chinese national clinical editions, SNOMED CT) and the local code systems of each member
 * institution, keyed by its unified social credit code (USCC).
 */
import { FHIR_BASE } from '../fhir/systems.js';

export const LOINC_SYSTEM = 'http://loinc.org';
/** WHO ICD-10 as FHIR names it. */
export const ICD10_SYSTEM = 'http://hl7.org/fhir/sid/icd-10';
/**
 * ICD-10 national clinical edition (疾病分类与代码国家临床版, 2.0 codes look like `I10.x00`,
 * `E11.900`). No canonical URI is published for it, so the community defines one; the edition goes
 * in `Coding.version` / `ConceptMap.group.targetVersion`.
 */
export const ICD10_CN_CLINICAL_SYSTEM = `${FHIR_BASE}/CodeSystem/icd-10-cn-clinical`;
export const SNOMED_SYSTEM = 'http://snomed.info/sct';

/** Systems that count as standard: a coding in one of them needs no mapping. */
export const STANDARD_SYSTEMS: ReadonlySet<string> = new Set([LOINC_SYSTEM, ICD10_SYSTEM, ICD10_CN_CLINICAL_SYSTEM, SNOMED_SYSTEM]);

/** Kinds of local code lists an institution sends: lab tests, diagnoses, imaging/ECG exams. */
export const LOCAL_DOMAINS = ['lab', 'diagnosis', 'exam'] as const;
export type LocalDomain = (typeof LOCAL_DOMAINS)[number];

export const LOCAL_SYSTEM_PREFIX = `${FHIR_BASE}/CodeSystem/local/`;

/** Canonical URL of the ConceptMaps this community publishes. */
export const CONCEPT_MAP_BASE = `${FHIR_BASE}/ConceptMap/`;

/** The local code system of one institution for one domain, e.g. `…/CodeSystem/local/<USCC>/lab`. */
export function localCodeSystem(institutionUscc: string, domain: LocalDomain): string {
  return `${LOCAL_SYSTEM_PREFIX}${institutionUscc}/${domain}`;
}

/** Institution and domain of a local code system URI, or undefined for any other system. */
export function parseLocalCodeSystem(system: string | undefined): { institution: string; domain: LocalDomain } | undefined {
  if (!system?.startsWith(LOCAL_SYSTEM_PREFIX)) return undefined;
  const [institution, domain, ...rest] = system.slice(LOCAL_SYSTEM_PREFIX.length).split('/');
  if (!institution || rest.length > 0 || !(LOCAL_DOMAINS as readonly string[]).includes(domain)) return undefined;
  return { institution, domain: domain as LocalDomain };
}
