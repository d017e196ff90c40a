/**
 * Naming systems and canonical URLs of the county medical community, in one place.
 *
 * Everything the community defines lives under FHIR_BASE; identifier systems under `/sid/`,
 * code systems under `/CodeSystem/`, profiles and extensions under `/StructureDefinition/`,
 * search parameters under `/SearchParameter/`. The JSON files in profiles/ use the same strings;
 * test/fhir/profiles.test.ts checks that they agree.
 */

/** Root of every URL this community defines. */
export const FHIR_BASE = 'https://fhir.county-hie.cn';

// ---------------------------------------------------------------- identifier systems

/** Resident ID card number (居民身份证号, GB 11643-1999), the national OID for it. */
export const ID_CARD_SYSTEM = 'urn:oid:2.16.156.10011.1.3';
/** Electronic health card (电子健康卡) ID issued by the provincial health commission. */
export const HEALTH_CARD_SYSTEM = `${FHIR_BASE}/sid/ehealth-card`;
/** Basic medical insurance number (医保号 / 医保电子凭证). */
export const MEDICAL_INSURANCE_SYSTEM = `${FHIR_BASE}/sid/medical-insurance`;
/** Unified social credit code of an organisation (统一社会信用代码, GB 32100-2015, 18 characters). */
export const USCC_SYSTEM = `${FHIR_BASE}/sid/uscc`;
/** Practitioner licence number (医师/护士执业证书编码). */
export const PRACTITIONER_LICENCE_SYSTEM = `${FHIR_BASE}/sid/practitioner-licence`;
/** Identifiers of demo-community resources without a natural key (roles, results), so a reload matches them. */
export const DEMO_IDENTIFIER_SYSTEM = `${FHIR_BASE}/sid/demo`;
/** Prefix of the local medical record number (病案号/门诊号) systems, one per member institution. */
export const MRN_SYSTEM_PREFIX = `${FHIR_BASE}/sid/mrn/`;

/** Local MRN system of one member institution, keyed by its unified social credit code. */
export function mrnSystem(institutionUscc: string): string {
  return MRN_SYSTEM_PREFIX + institutionUscc;
}

/** The institution's unified social credit code when `system` is a local MRN system, else undefined. */
export function institutionOfMrnSystem(system: string | undefined): string | undefined {
  if (!system?.startsWith(MRN_SYSTEM_PREFIX)) return undefined;
  const code = system.slice(MRN_SYSTEM_PREFIX.length);
  return code.length > 0 && !code.includes('/') ? code : undefined;
}

// ---------------------------------------------------------------- code systems and tags

/** Institution level within the community: `county` | `township` | `village`. */
export const INSTITUTION_LEVEL_SYSTEM = `${FHIR_BASE}/CodeSystem/institution-level`;
/** Hospital grade (医院等级): `1`/`2`/`3` (一级/二级/三级) optionally with class A/B/C (甲/乙/丙), e.g. `2A`. */
export const HOSPITAL_GRADE_SYSTEM = `${FHIR_BASE}/CodeSystem/hospital-grade`;
/** `meta.tag` system naming the member institution a resource came from; code = its USCC. */
export const INSTITUTION_TAG_SYSTEM = `${FHIR_BASE}/CodeSystem/source-institution`;

export const INSTITUTION_LEVELS = ['county', 'township', 'village'] as const;
export type InstitutionLevel = (typeof INSTITUTION_LEVELS)[number];

// ---------------------------------------------------------------- profiles and extensions

/** Patient profile: an identifier is required; ID card numbers must pass GB 11643. */
export const CN_PATIENT_PROFILE = `${FHIR_BASE}/StructureDefinition/cn-patient`;
/** Organization profile: institution level required, partOf for township and village. */
export const CN_ORGANIZATION_PROFILE = `${FHIR_BASE}/StructureDefinition/cn-organization`;
/** Extension on Organization carrying the institution level (valueCoding from INSTITUTION_LEVEL_SYSTEM). */
export const INSTITUTION_LEVEL_EXTENSION = `${FHIR_BASE}/StructureDefinition/institution-level`;
/** Extension on Organization carrying the hospital grade (valueCoding from HOSPITAL_GRADE_SYSTEM). */
export const HOSPITAL_GRADE_EXTENSION = `${FHIR_BASE}/StructureDefinition/hospital-grade`;
/**
 * Extension on ElementDefinition.constraint: the child element an invariant is about, so that
 * an issue points at e.g. `Patient.identifier[0].value` rather than at the identifier.
 */
export const CONSTRAINT_FOCUS_EXTENSION = `${FHIR_BASE}/StructureDefinition/constraint-focus`;

/** Search parameter `Organization?level=` on the institution-level extension. */
export const ORGANIZATION_LEVEL_SEARCH_PARAMETER = `${FHIR_BASE}/SearchParameter/organization-level`;
/** Search parameter `Organization?grade=` on the hospital-grade extension. */
export const ORGANIZATION_GRADE_SEARCH_PARAMETER = `${FHIR_BASE}/SearchParameter/organization-grade`;

/** Subscription.channel extension carrying the subscriber's HMAC secret; kept by the gateway, never stored in the resource. */
export const SUBSCRIPTION_SECRET_EXTENSION = `${FHIR_BASE}/StructureDefinition/subscription-hmac-secret`;
/** SubscriptionTopics of the community (profiles/subscriptiontopic-*.json). */
export const ENCOUNTER_FINISHED_TOPIC = `${FHIR_BASE}/SubscriptionTopic/encounter-finished`;
export const LAB_RESULT_TOPIC = `${FHIR_BASE}/SubscriptionTopic/lab-result`;
