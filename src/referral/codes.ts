/**
 * Codes and extensions of the referral workflow (双向转诊).
 */
import { FHIR_BASE } from '../fhir/systems.js';
import { ICD10_CN_CLINICAL_SYSTEM, ICD10_SYSTEM } from '../terminology/index.js';

/** ServiceRequest.category of a referral (SNOMED CT 3457005 Patient referral). */
export const SNOMED = 'http://snomed.info/sct';
export const REFERRAL_CATEGORY = { system: SNOMED, code: '3457005', display: 'Patient referral' } as const;
/** Task.code of the Task that carries a referral's workflow state. */
export const TASK_CODE_SYSTEM = `${FHIR_BASE}/CodeSystem/task-code`;
export const REFERRAL_TASK_CODE = 'referral';
/** ServiceRequest extension: valueCode `up` or `down`. */
export const DIRECTION_EXTENSION = `${FHIR_BASE}/StructureDefinition/referral-direction`;
/** ServiceRequest extension: valueString, why the level rules are set aside for this referral. */
export const EXCEPTION_EXTENSION = `${FHIR_BASE}/StructureDefinition/referral-exception`;
/** ServiceRequest extension: valueString, what the level rules flagged (allowed, but to look at). */
export const FLAG_EXTENSION = `${FHIR_BASE}/StructureDefinition/referral-flag`;
/** Task extension: valueDateTime, when the referral was accepted. */
export const ACCEPTED_AT_EXTENSION = `${FHIR_BASE}/StructureDefinition/referral-accepted-at`;
/** Task.businessStatus of a green-channel (绿色通道) referral accepted for immediate handling. */
export const BUSINESS_STATUS_SYSTEM = `${FHIR_BASE}/CodeSystem/referral-business-status`;
/** Slot.serviceCategory of slots reserved for referrals from below (预约转诊号源). */
export const SLOT_RESERVATION_SYSTEM = `${FHIR_BASE}/CodeSystem/slot-reservation`;
export const REFERRAL_RESERVED = 'referral';
/** Task.output type of the Appointment booked on acceptance. */
export const OUTPUT_TYPE_SYSTEM = `${FHIR_BASE}/CodeSystem/referral-output`;
export const ICD10_SYSTEMS: ReadonlySet<string> = new Set([ICD10_SYSTEM, ICD10_CN_CLINICAL_SYSTEM]);
/** Priorities that open the green channel. */
export const GREEN_PRIORITIES: ReadonlySet<string> = new Set(['stat', 'asap']);
