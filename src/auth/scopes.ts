/**
 * SMART system scopes at the token endpoint: syntax, normalisation and what may be granted.
 *
 * Accepted: v2 `system/Observation.rs`, `system/*.cruds` (permissions in the order c r u d s),
 * optionally narrowed by a query (`system/Observation.rs?category=laboratory`), and v1
 * `system/*.read` / `.write` / `.*`, normalised to v2 (`rs`, `cud`, `cruds`). Enforcement of
 * the granted scopes on each interaction lives in policy.ts.
 */
/** Types that a wildcard scope never covers: the audit log needs a scope that names it. */
export const EXPLICIT_ONLY: ReadonlySet<string> = new Set(['AuditEvent']);

const PERMISSIONS = 'cruds';
const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };
const SCOPE_RE = /^(system|patient)\/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]{1,5})(\?[^\s]{1,512})?$/;

export interface SystemScope {
  /**
   * `system`: the client's own rights; `patient`: rights over one resident's record only (a
   * patient-facing app, whose token names the resident), enforced by policy.ts and the record guard.
   */
  readonly context: 'system' | 'patient';
  /** Resource type, or `*`. */
  readonly type: string;
  /** Permissions in canonical order, a non-empty subsequence of `cruds`. */
  readonly perms: string;
  /** Query narrowing the scope (with its leading `?`), or ''. */
  readonly query: string;
}

function canonicalPerms(raw: string): string | undefined {
  if (V1[raw]) return V1[raw];
  if (!/^c?r?u?d?s?$/.test(raw) || raw === '') return undefined;
  return raw;
}

/** Parses one scope; undefined when it is not a system scope this gateway understands. */
export function parseScope(scope: string): SystemScope | undefined {
  const m = SCOPE_RE.exec(scope);
  if (!m) return undefined;
  const perms = canonicalPerms(m[3]);
  if (!perms) return undefined;
  return { context: m[1] as SystemScope['context'], type: m[2], perms, query: m[4] ?? '' };
}

export function formatScope(s: SystemScope): string {
  return `${s.context}/${s.type}.${s.perms}${s.query}`;
}

/** The normalised (v2) form of a scope, or undefined when it is not an understood system scope. */
export function normalizeScope(scope: string): string | undefined {
  const s = parseScope(scope);
  return s ? formatScope(s) : undefined;
}

function intersect(a: string, b: string): string {
  return [...PERMISSIONS].filter((p) => a.includes(p) && b.includes(p)).join('');
}

function union(a: string, b: string): string {
  return [...PERMISSIONS].filter((p) => a.includes(p) || b.includes(p)).join('');
}

/**
 * The scopes to grant for a token request (RFC 6749 §3.3): each requested scope narrowed to
 * what the client's allowed scopes cover (an allowed scope covers a request of the same or any
 * type when its type is `*`, and without a query or with the same query); requested scopes the
 * client may not have at all are dropped. A `*` scope never covers the types of
 * EXPLICIT_ONLY (AuditEvent). No request: every allowed scope. Empty result: the
 * caller answers invalid_scope.
 */
export function grantScopes(allowed: readonly string[], requested: readonly string[] | undefined): string[] {
  const allowedParsed = allowed.map(parseScope).filter((s): s is SystemScope => s !== undefined);
  if (requested === undefined) return [...new Set(allowedParsed.map(formatScope))];
  const granted: string[] = [];
  for (const raw of requested) {
    const want = parseScope(raw);
    if (!want) continue;
    let covered = '';
    for (const a of allowedParsed) {
      // As in policy.ts: `*` does not cover the audit log, which needs a scope naming it.
      if (a.context !== want.context) continue;
      if (a.type === '*' ? EXPLICIT_ONLY.has(want.type) : a.type !== want.type) continue;
      if (a.query !== '' && a.query !== want.query) continue;
      covered = union(covered, a.perms);
    }
    const perms = intersect(want.perms, covered);
    if (perms) granted.push(formatScope({ ...want, perms }));
  }
  return [...new Set(granted)];
}

/** Splits an OAuth `scope` parameter (space-delimited, RFC 6749 §3.3). */
export function splitScopeParam(param: string): string[] {
  return param.split(' ').filter((s) => s !== '');
}
