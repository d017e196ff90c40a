/**
 * Who may do what: SMART v2 system scopes on every interaction, and the institution policy of
 * the community: a HIS writes only its own institution's data (and, where configured, that of
 * the institutions under it); reading across institutions for the shared record is allowed to
 * clinical clients; AuditEvent is never written through the API.
 */
import type { Resource } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import { INSTITUTION_TAG_SYSTEM, USCC_SYSTEM } from '../fhir/systems.js';
import type { RequestContext } from '../fhir/context.js';
import type { ParsedSearch, Filter } from '../store/search/index.js';
import type { Queryable } from '../store/index.js';
import { EXPLICIT_ONLY, parseScope } from './scopes.js';

export { EXPLICIT_ONLY } from './scopes.js';

/** SMART v2 permissions: create, read, update, delete, search. */
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface Grants {
  /** Permissions by resource type; `*` applies to every type. */
  readonly byType: ReadonlyMap<string, ReadonlySet<Permission>>;
}

/**
 * What granted scopes allow. Scopes narrowed by a query (`system/Observation.rs?category=…`)
 * grant nothing here until narrowing is enforced: refusing is the safe reading.
 */
export function parseScopes(scopes: readonly string[], resident = false): Grants {
  const byType = new Map<string, Set<Permission>>();
  for (const raw of scopes) {
    const scope = parseScope(raw.trim());
    if (!scope || scope.query) continue;
    // patient/ scopes count only in a token naming the resident, whose record the guard then confines them to.
    if ((scope.context === 'patient') !== resident) continue;
    const set = byType.get(scope.type) ?? new Set<Permission>();
    for (const p of scope.perms) set.add(p as Permission);
    byType.set(scope.type, set);
  }
  return { byType };
}

const grantCache = new WeakMap<readonly string[], Grants>();
const residentGrantCache = new WeakMap<readonly string[], Grants>();

function grantsOf(ctx: RequestContext): Grants | undefined {
  if (!ctx.scopes) return undefined;
  const resident = ctx.patient !== undefined;
  const cache = resident ? residentGrantCache : grantCache;
  let g = cache.get(ctx.scopes);
  if (!g) {
    g = parseScopes(ctx.scopes, resident);
    cache.set(ctx.scopes, g);
  }
  return g;
}

/** Refuses a resident's token (patient-facing app) where only the community's systems may act. */
export function assertNotResident(ctx: RequestContext, what: string): void {
  if (ctx.patient !== undefined) throw forbidden(`A resident's app may read only the resident's own record and its access log, not ${what}`, what);
}

/** True when the context may do `perm` on `type`. A context without scopes is the gateway itself. */
export function can(ctx: RequestContext, type: string, perm: Permission): boolean {
  const g = grantsOf(ctx);
  if (!g) return true;
  if (g.byType.get(type)?.has(perm)) return true;
  return !EXPLICIT_ONLY.has(type) && (g.byType.get('*')?.has(perm) ?? false);
}

const WORDS: Record<Permission, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

export function forbidden(message: string, expression?: string): GatewayError {
  return new GatewayError('GW_ERR_FORBIDDEN', message, expression ? { expression } : {});
}

export function assertCan(ctx: RequestContext, type: string, perm: Permission): void {
  if (!can(ctx, type, perm)) {
    throw forbidden(`Client "${ctx.clientId ?? 'unknown'}" has no scope to ${WORDS[perm]} ${type} (needs system/${type}.${perm})`, type);
  }
}

/** Every type a search touches beyond its own: chained targets and _has sources need search rights. */
export function assertCanSearch(ctx: RequestContext, ps: ParsedSearch): void {
  const types = ps.type ? [ps.type] : (ps.types ?? ['*']);
  for (const t of types) assertCan(ctx, t, 's');
  const walk = (f: Filter): void => {
    if (f.kind === 'chain') {
      assertCan(ctx, f.targetType, 's');
      walk(f.inner);
    } else if (f.kind === 'has') {
      assertCan(ctx, f.sourceType, 's');
      walk(f.inner);
    }
  };
  ps.filters.forEach(walk);
  for (const inc of ps.includes) {
    if (inc.reverse && inc.sourceType !== '*') assertCan(ctx, inc.sourceType, 'r');
    if (!inc.reverse && inc.targetType) assertCan(ctx, inc.targetType, 'r');
  }
}

// ---- institution policy ----

/** The member institution (USCC code) a resource is tagged with, if any. */
export function institutionOf(resource: Resource | undefined): string | undefined {
  return resource?.meta?.tag?.find((t) => t.system === INSTITUTION_TAG_SYSTEM)?.code;
}

/** Source of a write: the client system, as meta.source. */
export function sourceUri(ctx: RequestContext): string | undefined {
  return ctx.clientId ? `urn:county-hie:client:${ctx.clientId}` : undefined;
}

/**
 * The institutions a context may write for: its own, plus (with `subordinates`) every
 * institution whose Organization.partOf chain leads to it. Undefined means no restriction
 * (the gateway itself, or a client that acts for no institution, such as an administrator).
 */
export async function writableInstitutions(q: Queryable, ctx: RequestContext, involved?: Iterable<string | undefined>): Promise<ReadonlySet<string> | undefined> {
  if (!ctx.scopes || !ctx.institution) return undefined;
  const own = new Set([ctx.institution]);
  if (!ctx.subordinates) return own;
  // The subordinate tree is looked up only when the writes touch another institution's data.
  if (involved && [...involved].every((i) => i === undefined || i === ctx.institution)) return own;
  const { rows } = await q.query<{ uscc: string }>(
    `WITH RECURSIVE tree(rid, depth) AS (
       SELECT t.rid, 0 FROM sp_token t
        WHERE t.rtype = 'Organization' AND t.code = 'identifier' AND t.system = $1 AND t.value = $2
       UNION
       SELECT child.rid, tree.depth + 1
         FROM tree
         JOIN resource parent ON parent.rid = tree.rid
         JOIN sp_reference child ON child.rtype = 'Organization' AND child.code = 'partof'
                                 AND child.target_type = 'Organization' AND child.target_id = parent.id
        WHERE tree.depth < 8)
     SELECT t.value AS uscc FROM tree
       JOIN sp_token t ON t.rid = tree.rid AND t.rtype = 'Organization' AND t.code = 'identifier' AND t.system = $1`,
    [USCC_SYSTEM, ctx.institution],
  );
  for (const r of rows) own.add(r.uscc);
  return own;
}

/**
 * Checks and stamps one write. `current` is the stored version (updates, patches, deletes),
 * `next` the version to store (undefined for deletes). Stamps meta.source and the institution tag.
 */
export function authorizeWrite(
  ctx: RequestContext,
  writable: ReadonlySet<string> | undefined,
  w: { type: string; method: 'POST' | 'PUT' | 'PATCH' | 'DELETE'; current?: Resource; next?: Resource; where: string },
): void {
  if (w.type === 'AuditEvent') {
    throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'AuditEvents are written by the gateway only; they cannot be created, changed or deleted through the API', {
      expression: w.where,
    });
  }
  const perm: Permission = w.method === 'DELETE' ? 'd' : w.current ? 'u' : w.method === 'POST' ? 'c' : 'u';
  assertCan(ctx, w.type, perm);
  if (w.method === 'PUT' && !w.current) assertCan(ctx, w.type, 'c');

  if (w.current && writable) {
    const owner = institutionOf(w.current);
    if (!owner || !writable.has(owner)) {
      throw forbidden(`${w.type}/${w.current.id} belongs to ${owner ? `institution ${owner}` : 'no member institution'}; client "${ctx.clientId}" may change only its own institution's data`, w.where);
    }
  }
  if (!w.next) return;
  const tagged = institutionOf(w.next);
  if (tagged === undefined && ctx.institution) {
    const meta = (w.next.meta ??= {});
    meta.tag = [...(meta.tag ?? []), { system: INSTITUTION_TAG_SYSTEM, code: ctx.institution }];
  } else if (tagged !== undefined && writable && !writable.has(tagged)) {
    throw forbidden(`Client "${ctx.clientId}" may not write data of institution ${tagged}`, `${w.where}.meta.tag`);
  }
  const source = sourceUri(ctx);
  if (source && ctx.scopes) w.next.meta = { ...(w.next.meta ?? {}), source };
}
