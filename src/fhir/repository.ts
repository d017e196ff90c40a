/**
 * The repository: the FHIR logic, transport-agnostic. REST routes, batch/transaction entries
 * and every ingest adapter call it; it knows nothing of HTTP. Writes go through the one write
 * path (write-path.ts) in one database transaction; reads and searches are audited before their
 * result is returned.
 */
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import { GatewayError, isGatewayError } from '../errors.js';
import { readCurrent, readVersion, type Db, type Queryable, type StoredRow } from '../store/index.js';
import { parseSearch, searchBundle, type SearchOptions, type SearchQuery } from '../store/search/index.js';
import { assertCan, assertCanSearch, can } from '../auth/policy.js';
import { recordAccess, type AccessRecord, type Interaction } from '../audit/index.js';
import type { RequestContext } from './context.js';
import { executeWrites, type IdentityHook, type ResourceValidator, type WorkflowHook, type WriteHooks, type WritePathDeps, type WriteRequest, type WriteResult } from './write-path.js';
import { historyBundle, type HistoryQuery } from './history.js';
import { patientsOf } from './compartment.js';
import { isKnownResourceType, searchParametersOf } from './definitions.js';

/** Consent enforcement on what reads return (src/ehr); injected so that this module stays transport- and policy-agnostic. */
export interface RecordGuard {
  check(q: Queryable, ctx: RequestContext, resources: readonly Resource[]): Promise<{ readonly withheld: ReadonlySet<Resource>; readonly revealed: readonly Resource[] }>;
  recordBreakGlass(q: Queryable, ctx: RequestContext, revealed: readonly Resource[]): Promise<void>;
  /** The Patient ids of the resident's person, for a resident's context. */
  residentPatients(q: Queryable, ctx: RequestContext): Promise<string[]>;
}

export interface RepositoryOptions {
  readonly db: Db;
  readonly validator: ResourceValidator;
  readonly search: SearchOptions;
  /** Work run inside every write transaction (subscription matching). */
  readonly hooks?: WriteHooks;
  /** Identity linking (MPI) run by every write that touches a Patient. */
  readonly identity?: IdentityHook;
  /** Workflow rules (referrals) checked on every write of the resources they own. */
  readonly workflow?: WorkflowHook;
  /** Consent: what each read may return. */
  readonly consent?: RecordGuard;
}

function assertType(type: string): void {
  if (!isKnownResourceType(type)) throw new GatewayError('GW_ERR_UNKNOWN_TYPE', `Unknown resource type "${type}"`, { expression: type });
}

/** The query as a URL query string (kept in the audit record's query entity). */
function formatQuery(query: SearchQuery): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const x of ([] as string[]).concat(v ?? [])) params.append(k, x);
  return params.toString();
}

function parse(row: StoredRow): Resource {
  return JSON.parse(row.content as string) as Resource;
}

function rowKey(row: StoredRow): string {
  return `${row.type}/${row.id}/${row.versionId}`;
}

function versionKey(resource: Resource | undefined): string {
  return `${resource?.resourceType}/${resource?.id}/${resource?.meta?.versionId}`;
}

export class Repository {
  readonly db: Db;
  readonly searchOptions: SearchOptions;
  private readonly validator: ResourceValidator;
  private readonly writeDeps: WritePathDeps;
  readonly consent?: RecordGuard;

  constructor(options: RepositoryOptions) {
    this.consent = options.consent;
    this.db = options.db;
    this.validator = options.validator;
    this.searchOptions = options.search;
    this.writeDeps = { validator: options.validator, hooks: options.hooks, identity: options.identity, workflow: options.workflow };
  }

  /** The same repository (validator, search options, identity linking) over another Db, e.g. a joined transaction. */
  on(db: Db): Repository {
    return new Repository({ db, validator: this.validator, search: this.searchOptions, hooks: this.writeDeps.hooks, identity: this.writeDeps.identity, workflow: this.writeDeps.workflow, consent: this.consent });
  }

  // ---- writes: all through executeWrites, in one transaction ----

  /** Runs write requests as one all-or-nothing transaction. */
  async write(requests: readonly WriteRequest[], ctx: RequestContext): Promise<WriteResult[]> {
    const interaction: Interaction =
      requests.length !== 1 ? 'transaction' : ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as const)[requests[0].method];
    const results = await this.guard(ctx, interaction, () => this.db.tx((q) => executeWrites(q, requests, ctx, this.writeDeps)));
    return results;
  }

  /** Runs work of the caller's (bundle processing) inside one transaction with the write path available. */
  async inTransaction<T>(fn: (q: Queryable, write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>) => Promise<T>, ctx: RequestContext): Promise<T> {
    const result = await this.guard(ctx, 'transaction', () => this.db.tx((q) => fn(q, (requests) => executeWrites(q, requests, ctx, this.writeDeps))));
    return result;
  }

  /**
   * Runs fn in one transaction with a write that stores with the gateway's own rights and without
   * identity linking: corrections the MPI makes itself (unmerge, unlink), attributed to ctx in the audit.
   */
  async asGateway<T>(fn: (q: Queryable, write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>) => Promise<T>, ctx: RequestContext): Promise<T> {
    const gateway: RequestContext = { ...ctx, scopes: undefined, institution: undefined, subordinates: undefined };
    return this.guard(ctx, 'operation', () => this.db.tx((q) => fn(q, (requests) => executeWrites(q, requests, gateway, { validator: this.validator, hooks: this.writeDeps.hooks }))));
  }

  async create(resource: Resource, ctx: RequestContext, ifNoneExist?: string): Promise<WriteResult> {
    const type = String(resource?.resourceType);
    assertType(type);
    const [r] = await this.write([{ method: 'POST', type, resource, ifNoneExist }], ctx);
    return r;
  }

  async update(type: string, id: string, resource: Resource, ctx: RequestContext, ifMatch?: number): Promise<WriteResult> {
    assertType(type);
    const [r] = await this.write([{ method: 'PUT', type, id, resource, ifMatch }], ctx);
    return r;
  }

  async conditionalUpdate(type: string, condition: string, resource: Resource, ctx: RequestContext, ifMatch?: number): Promise<WriteResult> {
    assertType(type);
    const [r] = await this.write([{ method: 'PUT', type, condition, resource, ifMatch }], ctx);
    return r;
  }

  async patch(type: string, target: { id?: string; condition?: string }, patch: Operation[], ctx: RequestContext, ifMatch?: number): Promise<WriteResult> {
    assertType(type);
    const [r] = await this.write([{ method: 'PATCH', type, ...target, patch, ifMatch }], ctx);
    return r;
  }

  async delete(type: string, target: { id?: string; condition?: string }, ctx: RequestContext): Promise<WriteResult> {
    assertType(type);
    const [r] = await this.write([{ method: 'DELETE', type, ...target }], ctx);
    return r;
  }

  // ---- reads ----

  /** The current version; 404 if unknown, 410 if deleted. `q` lets a transaction read its own writes. */
  async read(type: string, id: string, ctx: RequestContext, q: Queryable = this.db): Promise<StoredRow> {
    assertType(type);
    await this.guard(ctx, 'read', async () => assertCan(ctx, type, 'r'), `${type}/${id}`);
    const row = await readCurrent(q, type, id);
    if (!row) throw new GatewayError('GW_ERR_NOT_FOUND', `${type}/${id} not found`, { expression: `${type}/${id}` });
    if (row.deleted) throw new GatewayError('GW_ERR_GONE', `${type}/${id} was deleted`, { expression: `${type}/${id}` });
    await this.screenOne(q, ctx, 'read', parse(row), `${type}/${id}`);
    await this.audit(q, ctx, { interaction: 'read', outcome: '0', resources: [`${type}/${id}/_history/${row.versionId}`], patients: patientsOf(parse(row)) });
    return row;
  }

  async vread(type: string, id: string, versionId: string, ctx: RequestContext, q: Queryable = this.db): Promise<StoredRow> {
    assertType(type);
    await this.guard(ctx, 'vread', async () => assertCan(ctx, type, 'r'), `${type}/${id}`);
    const vid = Number(versionId);
    const row = Number.isSafeInteger(vid) && vid > 0 ? await readVersion(q, type, id, vid) : undefined;
    if (!row) throw new GatewayError('GW_ERR_NOT_FOUND', `${type}/${id}/_history/${versionId} not found`, { expression: `${type}/${id}` });
    if (row.deleted) throw new GatewayError('GW_ERR_GONE', `${type}/${id} version ${versionId} is a deletion`, { expression: `${type}/${id}` });
    await this.screenOne(q, ctx, 'vread', parse(row), `${type}/${id}`);
    await this.audit(q, ctx, { interaction: 'vread', outcome: '0', resources: [`${type}/${id}/_history/${vid}`], patients: patientsOf(parse(row)) });
    return row;
  }

  /** lenient: unknown parameters are ignored and reported in the Bundle (`Prefer: handling=lenient`). */
  async search(type: string | undefined, query: SearchQuery, ctx: RequestContext, q: Queryable = this.db, lenient = false): Promise<Bundle> {
    if (type !== undefined) assertType(type);
    const options = { ...this.searchOptions, lenient };
    await this.guard(ctx, type ? 'search-type' : 'search-system', async () => {
      assertCanSearch(ctx, parseSearch(type, query, options));
      // A resident sees only their own record; counts over everyone's would tell about others.
      if (ctx.patient !== undefined && (query._summary === 'count' || query._total !== undefined)) {
        throw new GatewayError('GW_ERR_FORBIDDEN', "A resident's app may not count resources (_summary=count, _total)", { expression: query._total !== undefined ? '_total' : '_summary' });
      }
    });
    const { bundle, matches, included: all } = await searchBundle(q, type, await this.confine(q, ctx, type, query), options);
    // Included resources of types the client may not read are left out of the page.
    const included = all.filter((r) => can(ctx, r.type, 'r'));
    if (included.length !== all.length) {
      const keep = new Set(included.map((r) => `${r.type}/${r.id}`));
      bundle.entry = bundle.entry?.filter((e) => e.search?.mode !== 'include' || keep.has(`${e.resource?.resourceType}/${e.resource?.id}`));
    }
    const screened = await this.screenRows(q, ctx, [...matches, ...included]);
    if (screened.withheld.size) {
      bundle.entry = bundle.entry?.filter((e) => !screened.withheld.has(versionKey(e.resource)));
      const hiddenMatches = matches.filter((r) => screened.withheld.has(rowKey(r))).length;
      if (bundle.total !== undefined) bundle.total = Math.max(0, bundle.total - hiddenMatches);
    }
    if (ctx.patient !== undefined) delete bundle.total;
    const rows = screened.rows;
    const patients = new Set<string>();
    for (const row of rows) for (const p of patientsOf(parse(row))) patients.add(p);
    await this.audit(q, ctx, {
      interaction: type ? 'search-type' : 'search-system',
      outcome: '0',
      resources: rows.map((r) => `${r.type}/${r.id}`),
      patients: [...patients],
      query: `${type ?? ''}?${formatQuery(query)}`,
    });
    return bundle;
  }

  async history(target: { type?: string; id?: string }, query: HistoryQuery, ctx: RequestContext, q: Queryable = this.db): Promise<Bundle> {
    if (target.type !== undefined) assertType(target.type);
    const interaction: Interaction = target.id ? 'history-instance' : target.type ? 'history-type' : 'history-system';
    await this.guard(ctx, interaction, async () => assertCan(ctx, target.type ?? '*', target.id ? 'r' : 's'));
    const history = await historyBundle(q, target, query, this.searchOptions);
    const { bundle } = history;
    const screened = await this.screenRows(q, ctx, history.rows);
    if (screened.withheld.size) bundle.entry = bundle.entry?.filter((e) => !e.resource || !screened.withheld.has(versionKey(e.resource)));
    // A deletion carries no content to tell whose it was: a resident is not shown deletions.
    if (ctx.patient !== undefined) bundle.entry = bundle.entry?.filter((e) => e.resource);
    const rows = screened.rows;
    const patients = new Set<string>();
    for (const row of rows) if (row.content) for (const p of patientsOf(parse(row))) patients.add(p);
    await this.audit(q, ctx, {
      interaction,
      outcome: '0',
      resources: rows.map((r) => `${r.type}/${r.id}/_history/${r.versionId}`),
      patients: [...patients],
    });
    return bundle;
  }

  /**
   * Runs fn; a refusal (403) is recorded as a failed access in its own statement, outside any
   * transaction that the refusal rolls back, and rethrown.
   */
  private async guard<T>(ctx: RequestContext, interaction: Interaction, fn: () => Promise<T>, resource?: string): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (isGatewayError(e) && (e.code === 'GW_ERR_FORBIDDEN' || e.code === 'GW_ERR_METHOD_NOT_ALLOWED')) {
        await recordAccess(this.db, ctx, [{ interaction, outcome: '4', outcomeText: e.message, resources: resource ? [resource] : [], patients: [] }]);
      }
      throw e;
    }
  }

  /**
   * A resident's search is confined to the resident's own record in the query itself (so that
   * pages are full): `patient=` on types that have it, `_id=` on Patient, `link=` on Person. Other
   * types are still screened after the search.
   */
  private async confine(q: Queryable, ctx: RequestContext, type: string | undefined, query: SearchQuery): Promise<SearchQuery> {
    if (ctx.patient === undefined || !this.consent || !type) return query;
    const own = await this.consent.residentPatients(q, ctx);
    const refs = own.map((id) => `Patient/${id}`).join(',');
    const add = (name: string, value: string): SearchQuery => ({ ...query, [name]: [...([] as string[]).concat(query[name] ?? []), value] });
    if (type === 'Patient') return add('_id', own.join(','));
    if (type === 'Person') return add('link', refs);
    if (searchParametersOf(type).patient) return add('patient', refs);
    return query;
  }

  /** Consent on one resource about to be returned: withheld → 403 (audited), revealed by breaking the glass → audited. */
  private async screenOne(q: Queryable, ctx: RequestContext, interaction: Interaction, resource: Resource, where: string): Promise<void> {
    if (!this.consent) return;
    const verdict = await this.consent.check(q, ctx, [resource]);
    if (verdict.withheld.size && ctx.patient !== undefined) {
      await recordAccess(this.db, ctx, [{ interaction, outcome: '4', outcomeText: "not the resident's own record", resources: [where], patients: [] }]);
      throw new GatewayError('GW_ERR_FORBIDDEN', `${where} is not part of the resident's own record`, { expression: where });
    }
    if (verdict.withheld.size) {
      const message = `${where} is withheld by the patient's consent; in an emergency a clinician may break the glass (X-Break-Glass: <reason>, with X-User-Id)`;
      await recordAccess(this.db, ctx, [{ interaction, outcome: '4', outcomeText: 'withheld by consent', resources: [where], patients: patientsOf(resource) }]);
      throw new GatewayError('GW_ERR_CONSENT_RESTRICTED', message, { expression: where });
    }
    await this.consent.recordBreakGlass(q, ctx, verdict.revealed);
  }

  /** Consent on the rows a search or history is about to return: the rows kept, and the keys withheld. */
  private async screenRows(q: Queryable, ctx: RequestContext, rows: readonly StoredRow[]): Promise<{ rows: StoredRow[]; withheld: Set<string> }> {
    if (!this.consent) return { rows: [...rows], withheld: new Set() };
    const withContent = rows.filter((r) => r.content);
    const resources = withContent.map(parse);
    const verdict = await this.consent.check(q, ctx, resources);
    await this.consent.recordBreakGlass(q, ctx, verdict.revealed);
    const withheld = new Set<string>();
    resources.forEach((r, i) => {
      if (verdict.withheld.has(r)) withheld.add(rowKey(withContent[i]));
    });
    return { rows: rows.filter((r) => !withheld.has(rowKey(r))), withheld };
  }

  private async audit(q: Queryable, ctx: RequestContext, record: AccessRecord): Promise<void> {
    await recordAccess(q, ctx, [record]);
  }
}
