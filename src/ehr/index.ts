/**
 * The shared record: $everything across a person's linked records, the clinician summary, and
 * consent enforcement on every read path.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { patientsOf } from '../fhir/compartment.js';
import { checkConsent, recordBreakGlass, samePerson, type ConsentVerdict } from './consent.js';

export { everythingBundle, everythingPage, markedEntries, institutionCode, SOURCE_INSTITUTION_EXTENSION, type EverythingQuery, type EverythingPage } from './everything.js';
export { summaryDocument, summarySections, type SummaryOptions } from './summary.js';
export { checkConsent, samePerson, sensitivityOf, assertMayBreakGlass, ACT_CODE_SYSTEM, SENSITIVE_CATEGORIES, type ConsentVerdict } from './consent.js';

/** Consent as the repository and the operations apply it to what they are about to return. */
export interface RecordGuard {
  check(q: Queryable, ctx: RequestContext, resources: readonly Resource[]): Promise<ConsentVerdict>;
  /** Audits what was shown only because the glass was broken. */
  recordBreakGlass(q: Queryable, ctx: RequestContext, revealed: readonly Resource[]): Promise<void>;
  residentPatients(q: Queryable, ctx: RequestContext): Promise<string[]>;
}

export function createConsentGuard(): RecordGuard {
  return {
    check: (q, ctx, resources) => checkConsent(q, ctx, resources, patientsOf),
    recordBreakGlass: (q, ctx, revealed) => recordBreakGlass(q, ctx, revealed, patientsOf),
    residentPatients: async (q, ctx) => (ctx.patient ? [...(await samePerson(q, ctx.patient))] : []),
  };
}
