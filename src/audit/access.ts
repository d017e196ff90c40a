/**
 * Who may read the audit trail: the access policy decides, like for every other type. A scope
 * must name AuditEvent (`system/AuditEvent.rs`); a wildcard never covers it (EXPLICIT_ONLY).
 */
import { assertCan } from '../auth/policy.js';
import type { RequestContext } from '../fhir/context.js';

export type AuditPermission = 'r' | 's';

/** Refuses (403) unless the context may read (`r`: read, $verify) or search (`s`: search, $export) the trail. */
export function assertAuditorScope(ctx: RequestContext, perm: AuditPermission = 'r'): void {
  assertCan(ctx, 'AuditEvent', perm);
}
