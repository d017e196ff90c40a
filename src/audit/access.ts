/**
 * Who may read the audit trail: a client whose token grants a system scope that names
 * AuditEvent (`system/AuditEvent.rs`, `.r`, `.s`, v1 `.read` or `.*`). A wildcard type
 * (`system/*.rs`) does not cover the audit log, in line with the access policy; a request
 * without scopes is refused.
 */
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../fhir/context.js';

export type AuditPermission = 'r' | 's';

const V1: Record<string, string> = { read: 'rs', '*': 'cruds' };

/** The AuditEvent permissions the scopes grant (a subset of `rs`). */
export function auditPermissions(scopes: readonly string[]): Set<AuditPermission> {
  const out = new Set<AuditPermission>();
  for (const scope of scopes) {
    const m = /^system\/AuditEvent\.([a-z*]{1,5})$/.exec(scope.trim());
    if (!m) continue;
    const perms = V1[m[1]] ?? (/^c?r?u?d?s?$/.test(m[1]) ? m[1] : '');
    if (perms.includes('r')) out.add('r');
    if (perms.includes('s')) out.add('s');
  }
  return out;
}

/**
 * Refuses (401 without credentials, 403 without an auditor grant) unless the context may read
 * (`r`: read, $verify) or search (`s`: search, $export) the audit trail.
 */
export function assertAuditorScope(ctx: RequestContext, perm: AuditPermission = 'r'): void {
  if (ctx.scopes === undefined) {
    throw new GatewayError('GW_ERR_UNAUTHORIZED', 'The audit trail is served to authenticated auditors only');
  }
  if (!auditPermissions(ctx.scopes).has(perm)) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `Reading the audit trail needs the scope system/AuditEvent.${perm} (or .rs)`, { expression: 'AuditEvent' });
  }
}
