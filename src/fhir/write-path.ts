/**
 * The one write path. Whatever door a write came in by, it arrives here as a list of write
 * requests (a transaction), and in ONE database transaction this module:
 * resolves conditional creates/updates/deletes and conditional references → rewrites
 * urn:uuid: references → validates → stores versions and index rows → appends the AuditEvents
 * → appends the matched subscription events (the outbox, subscriptions/outbox.ts). The caller
 * acknowledges only after commit.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { GatewayError, isGatewayError } from '../errors.js';
import { readByRids, readCurrent, writeVersions, type Queryable, type StoredRow, type WriteMethod } from '../store/index.js';
import { findByTokenKeys, findMatches, queryFromString, tokenKeyOf, type TokenKey } from '../store/search/index.js';
import { recordAccess, type AccessRecord } from '../audit/index.js';
import type { RequestContext } from './context.js';
import { findReferences, isConditionalReference } from './references.js';
import { patientsOf } from './compartment.js';
import { isKnownResourceType } from './definitions.js';
import { assertCan, authorizeWrite, institutionOf, writableInstitutions } from '../auth/policy.js';

export interface WriteRequest {
  readonly method: WriteMethod;
  readonly type: string;
  readonly id?: string;
  /** Search query (without `?`) of a conditional update, patch or delete. */
  readonly condition?: string;
  /** Search query of a conditional create (If-None-Exist). */
  readonly ifNoneExist?: string;
  /** Expected current version (If-Match), as a version number. */
  readonly ifMatch?: number;
  readonly resource?: Resource;
  readonly patch?: Operation[];
  /** fullUrl of a Bundle entry, for urn:uuid: reference rewriting. */
  readonly fullUrl?: string;
  /** Where this request sits, for error expressions (e.g. `Bundle.entry[3]`). */
  readonly path?: string;
}

export interface WriteResult {
  /** 200 updated / no-op, 201 created, 204 nothing to delete. */
  readonly status: number;
  readonly type: string;
  readonly id?: string;
  readonly versionId?: number;
  readonly lastUpdated?: string;
  /** The stored version (undefined for deletions). */
  readonly resource?: Resource;
  /**
   * True when nothing was written: If-None-Exist matched, delete of a deleted resource, or an
   * update that would store what is already stored (the current version is the result).
   */
  readonly noop: boolean;
}

/** Validation as the write path needs it; the resolver sees the transaction's own resources first. */
export interface ResourceValidator {
  assertValid(resource: Resource, resolver?: (reference: string) => Promise<Resource | undefined>): Promise<void>;
}

/**
 * Work done inside the write's transaction by another concern (subscriptions): before the
 * versions are stored (may check and adjust the resources), and after (sees the stored versions).
 */
export interface WriteHooks {
  beforeStore(q: Queryable, ctx: RequestContext, writes: readonly { type: string; id: string; method: WriteMethod; resource?: Resource }[]): Promise<void>;
  afterStore(
    q: Queryable,
    writes: readonly { type: string; id: string; versionId: number; action: 'create' | 'update' | 'delete'; resource?: Resource; previous?: Resource }[],
    at: string,
  ): Promise<void>;
}

/**
 * Identity linking (the MPI), run inside the write's transaction: `prepare` sees each Patient
 * before it is validated and stored (to flag it), `link` the Patients stored and deleted, with a
 * `write` that stores what linking produces through this same path with the gateway's own rights.
 */
export interface IdentityHook {
  prepare(patient: Resource): void;
  link(q: Queryable, changed: { readonly stored: readonly Resource[]; readonly deleted: readonly string[] }, ctx: RequestContext, write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>): Promise<void>;
}

/** One write as a workflow hook sees it: the stored version and the version to store. */
export interface WorkflowWrite {
  readonly type: string;
  readonly method: WriteMethod;
  readonly current?: Resource;
  /** The version to store (references already resolved); the hook may complete it. */
  readonly next?: Resource;
  readonly where: string;
}

/**
 * Workflow rules run inside the write's transaction for the resources they own (the referral
 * Task, src/referral): whichever door a write came in by, it cannot bypass them. `owns` says a
 * write's side is decided by the workflow (both parties of a referral write its Task) instead of
 * the institution tag; `check` refuses what the rules forbid and may add writes of its own
 * (booking a slot) through `write`, with the gateway's rights, in the same transaction.
 */
export interface WorkflowHook {
  /** The resource types whose writes `check` sees. */
  readonly types: ReadonlySet<string>;
  owns(type: string, current?: Resource, next?: Resource): boolean;
  check(
    q: Queryable,
    ctx: RequestContext,
    writes: readonly WorkflowWrite[],
    resolve: (reference: string) => Promise<Resource | undefined>,
    write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>,
  ): Promise<void>;
}

export interface WritePathDeps {
  readonly validator: ResourceValidator;
  readonly hooks?: WriteHooks;
  readonly identity?: IdentityHook;
  readonly workflow?: WorkflowHook;
}

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
/** FHIR processing order inside a transaction: deletes, creates, updates and patches. */
const ORDER: Record<WriteMethod, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2 };

interface Planned {
  readonly req: WriteRequest;
  readonly index: number;
  id?: string;
  current?: StoredRow;
  resource?: Resource;
  result?: WriteResult;
  /** What its condition matched, when resolved with the others' (prefetchConditions). */
  matched?: StoredRow[];
  /** Its matched row, read and locked with the others'. */
  locked?: StoredRow;
}

function where(req: WriteRequest): string {
  return req.path ?? req.type;
}

function fail(code: ConstructorParameters<typeof GatewayError>[0], message: string, req: WriteRequest, expr?: string): never {
  throw new GatewayError(code, message, { expression: expr ?? where(req) });
}

/** Prefixes issue expressions with the entry location inside a Bundle. */
function locate(err: unknown, req: WriteRequest): unknown {
  if (!req.path || !isGatewayError(err)) return err;
  const issues: OperationOutcomeIssue[] = err.outcome.issue.map((i) => ({
    ...i,
    expression: (i.expression ?? [req.path as string]).map((e) => (e.startsWith('Bundle') ? e : `${req.path}.resource${e.replace(/^[A-Z][A-Za-z]+/, '')}`)),
  }));
  return new GatewayError(err.code, err.message, { issues, cause: err });
}


/** Serialises conditional writes on the same condition, so two concurrent ones cannot both create. */
async function lockCondition(q: Queryable, type: string, condition: string): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${type}?${condition}`]);
}

async function matchOne(q: Queryable, req: WriteRequest, condition: string, prefetched?: StoredRow[]): Promise<StoredRow | undefined> {
  if (Object.keys(queryFromString(condition)).length === 0) fail('GW_ERR_BAD_REQUEST', 'A conditional request needs search criteria', req);
  const found = prefetched ?? (await findMatches(q, req.type, queryFromString(condition), 2));
  if (found.length > 1) fail('GW_ERR_MULTIPLE_MATCHES', `More than one ${req.type} matches "${condition}"`, req);
  return found[0];
}

function parseStored(row: StoredRow): Resource {
  return JSON.parse(row.content as string) as Resource;
}

/** The condition a request is matched by: If-None-Exist of a create, the search of a conditional update, patch or delete. */
function conditionOf(req: WriteRequest): string | undefined {
  return req.method === 'POST' ? req.ifNoneExist : req.id === undefined ? req.condition : undefined;
}

/**
 * Step 1 for many requests at once. The conditions that are one `system|value` token (an
 * identifier: how extract rows, HL7 v2 and DICOM mappings key their writes) are locked in one
 * statement, in one sorted order (two transactions locking overlapping keys cannot deadlock on
 * them), matched in one statement per resource type, and the matched rows of updates, patches and
 * deletes are read and locked in one more: a few statements per transaction instead of two or
 * three per request. resolveTargets then uses what was found; other conditions it matches alone.
 */
async function prefetchConditions(q: Queryable, plan: readonly Planned[]): Promise<void> {
  const keyed: { p: Planned; lock: string; key: TokenKey }[] = [];
  for (const p of plan) {
    const condition = conditionOf(p.req);
    if (condition === undefined || !isKnownResourceType(p.req.type)) continue;
    const key = tokenKeyOf(p.req.type, queryFromString(condition));
    if (key) keyed.push({ p, lock: `${p.req.type}?${condition}`, key });
  }
  if (keyed.length < 2) return;
  await q.query('SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest($1::text[]) AS k', [[...new Set(keyed.map((k) => k.lock))].sort()]);
  const byType = new Map<string, typeof keyed>();
  for (const k of keyed) byType.set(k.p.req.type, [...(byType.get(k.p.req.type) ?? []), k]);
  for (const [type, list] of byType) {
    const found = await findByTokenKeys(q, type, list.map((k) => k.key));
    list.forEach((k, i) => (k.p.matched = found[i]));
  }
  const toLock = keyed.filter((k) => k.p.req.method !== 'POST' && k.p.matched?.length === 1).map((k) => k.p);
  const locked = new Map((await readByRids(q, toLock.map((p) => (p.matched as StoredRow[])[0].rid), true)).map((r) => [r.rid, r]));
  for (const p of toLock) p.locked = locked.get((p.matched as StoredRow[])[0].rid);
}

/** Resolves which resource each request writes to (step 1). */
async function resolveTargets(q: Queryable, plan: Planned[]): Promise<void> {
  for (const p of plan) {
    const { req } = p;
    if (!isKnownResourceType(req.type)) fail('GW_ERR_UNKNOWN_TYPE', `Unknown resource type "${req.type}"`, req);
    if (req.id !== undefined && !ID_PATTERN.test(req.id)) fail('GW_ERR_BAD_REQUEST', `Invalid id "${req.id}"`, req);
    switch (req.method) {
      case 'POST': {
        if (req.ifNoneExist) {
          if (!p.matched) await lockCondition(q, req.type, req.ifNoneExist);
          const existing = await matchOne(q, req, req.ifNoneExist, p.matched);
          if (existing) {
            p.id = existing.id;
            p.result = { status: 200, type: req.type, id: existing.id, versionId: existing.versionId, lastUpdated: existing.lastUpdated, resource: parseStored(existing), noop: true };
            break;
          }
        }
        p.id = randomUUID();
        break;
      }
      case 'PUT':
      case 'PATCH': {
        if (req.id !== undefined) {
          p.id = req.id;
          p.current = await readCurrent(q, req.type, req.id, true);
        } else if (req.condition !== undefined) {
          if (!p.matched) await lockCondition(q, req.type, req.condition);
          const found = await matchOne(q, req, req.condition, p.matched);
          if (found) p.current = p.locked ?? (await readCurrent(q, req.type, found.id, true));
          const bodyId = req.resource?.id;
          if (found && bodyId && bodyId !== found.id) fail('GW_ERR_BAD_REQUEST', `Resource id "${bodyId}" differs from the matched ${req.type}/${found.id}`, req);
          p.id = found?.id ?? (bodyId && ID_PATTERN.test(bodyId) ? bodyId : randomUUID());
          if (!found && bodyId) p.current = await readCurrent(q, req.type, p.id, true);
        } else {
          fail('GW_ERR_BAD_REQUEST', `${req.method} needs an id or search criteria`, req);
        }
        if (req.method === 'PATCH' && (!p.current || p.current.deleted)) {
          fail(p.current ? 'GW_ERR_GONE' : 'GW_ERR_NOT_FOUND', `${req.type}/${p.id} does not exist`, req);
        }
        break;
      }
      case 'DELETE': {
        let row: StoredRow | undefined;
        if (req.id !== undefined) row = await readCurrent(q, req.type, req.id, true);
        else if (req.condition !== undefined) {
          if (!p.matched) await lockCondition(q, req.type, req.condition);
          const found = await matchOne(q, req, req.condition, p.matched);
          row = found && (p.locked ?? (await readCurrent(q, req.type, found.id, true)));
        }
        if (!row && req.id !== undefined) fail('GW_ERR_NOT_FOUND', `${req.type}/${req.id} not found`, req);
        p.id = row?.id ?? req.id;
        p.current = row;
        if (!row || row.deleted) p.result = { status: 204, type: req.type, id: p.id, noop: true };
        break;
      }
    }
    if (p.current && req.ifMatch !== undefined && p.current.versionId !== req.ifMatch) {
      fail('GW_ERR_VERSION_CONFLICT', `Version conflict: ${req.type}/${p.id} is at version ${p.current.versionId}, not ${req.ifMatch}`, req);
    }
    if (!p.current && req.ifMatch !== undefined && req.method !== 'POST') {
      fail('GW_ERR_VERSION_CONFLICT', `Version conflict: ${req.type}/${p.id} does not exist`, req);
    }
  }
}

/** Builds the new content of each create/update/patch (step 2). */
function buildContents(plan: Planned[]): void {
  for (const p of plan) {
    if (p.result || p.req.method === 'DELETE') continue;
    const { req } = p;
    let body: Resource;
    if (req.method === 'PATCH') {
      const base = parseStored(p.current as StoredRow);
      try {
        body = jsonpatch.applyPatch(base, req.patch ?? [], true, false, true).newDocument;
      } catch (e) {
        fail('GW_ERR_INVALID_PATCH', `JSON Patch cannot be applied: ${(e as Error).message}`, req);
      }
      if (body.resourceType !== req.type || body.id !== p.id) fail('GW_ERR_INVALID_PATCH', 'A patch may not change resourceType or id', req);
    } else {
      if (!req.resource || typeof req.resource !== 'object') fail('GW_ERR_INVALID_RESOURCE', 'A resource body is required', req);
      body = structuredClone(req.resource);
      if (body.resourceType !== req.type) {
        fail('GW_ERR_INVALID_RESOURCE', `Body is a ${String(body.resourceType)}, not a ${req.type}`, req, `${where(req)}.resourceType`);
      }
      if (req.method === 'PUT' && req.id !== undefined && body.id !== req.id) {
        fail('GW_ERR_INVALID_RESOURCE', `Body id "${String(body.id)}" does not match the URL id "${req.id}"`, req, `${req.type}.id`);
      }
    }
    body.id = p.id;
    p.resource = body;
  }
}

interface ReferenceMaps {
  /** fullUrl of an entry → `Type/id`. */
  readonly byFullUrl: Map<string, string>;
  /** `Type?query` of a conditional entry → `Type/id`, so references may name it the same way. */
  readonly byCondition: Map<string, string>;
}

function referenceMaps(plan: Planned[]): ReferenceMaps {
  const byFullUrl = new Map<string, string>();
  const byCondition = new Map<string, string>();
  for (const p of plan) {
    if (!p.id) continue;
    if (p.req.fullUrl) byFullUrl.set(p.req.fullUrl, `${p.req.type}/${p.id}`);
    const cond = p.req.ifNoneExist ?? (p.req.method !== 'DELETE' ? p.req.condition : undefined);
    if (cond) byCondition.set(`${p.req.type}?${cond}`, `${p.req.type}/${p.id}`);
  }
  return { byFullUrl, byCondition };
}

/** Rewrites urn:uuid: and conditional references of one request to `Type/id` (step 3). */
async function rewriteReferences(q: Queryable, p: Planned, maps: ReferenceMaps): Promise<void> {
  if (!p.resource) return;
  for (const ref of findReferences(p.resource)) {
    const mapped = maps.byFullUrl.get(ref.value);
    if (mapped) {
      ref.set(mapped);
    } else if (ref.value.startsWith('urn:uuid:') || ref.value.startsWith('urn:oid:')) {
      fail('GW_ERR_INVALID_BUNDLE', `Reference "${ref.value}" names no entry of this Bundle`, p.req, ref.path);
    } else if (isConditionalReference(ref.value)) {
      const local = maps.byCondition.get(ref.value);
      if (local) {
        ref.set(local);
        continue;
      }
      const cut = ref.value.indexOf('?');
      const [type, cond] = [ref.value.slice(0, cut), ref.value.slice(cut + 1)];
      if (!isKnownResourceType(type)) fail('GW_ERR_INVALID_RESOURCE', `Unknown type in conditional reference "${ref.value}"`, p.req, ref.path);
      const found = await findMatches(q, type, queryFromString(cond), 2);
      if (found.length !== 1) {
        fail(found.length ? 'GW_ERR_MULTIPLE_MATCHES' : 'GW_ERR_NOT_FOUND', `Conditional reference "${ref.value}" matches ${found.length} resources; exactly one is required`, p.req, ref.path);
      }
      ref.set(`${type}/${found[0].id}`);
    }
  }
}

/** Resource types whose update has an effect beyond its content (a Subscription PUT restarts delivery). */
const ALWAYS_STORED: ReadonlySet<string> = new Set(['Subscription']);

/** `resource` (a copy of its own) without the version's meta.versionId and lastUpdated. */
function withoutVersion(resource: Resource): Resource {
  if (resource.meta) {
    delete resource.meta.versionId;
    delete resource.meta.lastUpdated;
  }
  return resource;
}

/**
 * An update (PUT or PATCH) that would store exactly what is stored: the same content, and the
 * same source and tags, which the write path stamped before this is asked. FHIR lets a server keep
 * the version then; each HL7 result message sends its patient and visit again, and storing them
 * again would make a version, index rows, a subscription notification and an identity linking
 * run for nothing.
 */
function isUnchanged(p: Planned, workflow: WorkflowHook | undefined): boolean {
  const { req, current, resource } = p;
  if ((req.method !== 'PUT' && req.method !== 'PATCH') || !current || current.deleted || !resource) return false;
  if (ALWAYS_STORED.has(req.type)) return false;
  const stored = parseStored(current);
  // A write the workflow owns (a referral Task) is its step to take, changed or not.
  if (workflow?.owns(req.type, stored, resource)) return false;
  // The new version as it would be stored (JSON drops undefined members), against the stored one
  // as parsed (already a copy).
  return isDeepStrictEqual(withoutVersion(JSON.parse(JSON.stringify(resource)) as Resource), withoutVersion(stored));
}

/** A transaction may touch each resource once (FHIR: overlapping identities fail the transaction). */
function checkOverlap(plan: Planned[]): void {
  const seen = new Map<string, Planned>();
  for (const p of plan) {
    if (p.result || !p.id) continue;
    const key = `${p.req.type}/${p.id}`;
    const first = seen.get(key);
    if (first) {
      fail('GW_ERR_INVALID_BUNDLE', `${key} is written by more than one entry (also ${first.req.path ?? 'another request'})`, p.req);
    }
    seen.set(key, p);
  }
}

/** Runs a list of write requests as one unit inside the caller's database transaction. */
export async function executeWrites(q: Queryable, requests: readonly WriteRequest[], ctx: RequestContext, deps: WritePathDeps): Promise<WriteResult[]> {
  const plan: Planned[] = requests.map((req, index) => ({ req, index }));
  const ordered = [...plan].sort((a, b) => ORDER[a.req.method] - ORDER[b.req.method] || a.index - b.index);
  const step = async (fn: () => Promise<void> | void, p?: Planned) => {
    try {
      await fn();
    } catch (e) {
      throw p ? locate(e, p.req) : e;
    }
  };
  await prefetchConditions(q, ordered);
  for (const p of ordered) await step(() => resolveTargets(q, [p]), p);
  checkOverlap(ordered);
  for (const p of ordered) await step(() => buildContents([p]), p);
  const writable = await writableInstitutions(
    q,
    ctx,
    ordered.flatMap((p) => [p.current && !p.current.deleted ? institutionOf(parseStored(p.current)) : undefined, p.resource ? institutionOf(p.resource) : undefined]),
  );
  for (const p of ordered) {
    await step(() => {
      if (p.result) {
        // A no-op still needs the right it asked to use: a matched conditional create, a repeated delete.
        assertCan(ctx, p.req.type, p.req.method === 'DELETE' ? 'd' : 'c');
        return;
      }
      const current = p.current && !p.current.deleted ? parseStored(p.current) : undefined;
      const owned = deps.workflow?.owns(p.req.type, current, p.resource) ?? false;
      authorizeWrite(ctx, owned ? undefined : writable, { type: p.req.type, method: p.req.method, current, next: p.resource, where: where(p.req) });
    }, p);
  }
  const maps = referenceMaps(ordered);
  for (const p of ordered) await step(() => rewriteReferences(q, p, maps), p);

  const lastUpdated = new Date().toISOString();
  const planned = ordered.filter((p) => !p.result);
  await deps.hooks?.beforeStore(
    q,
    ctx,
    planned.map((p) => ({ type: p.req.type, id: p.id as string, method: p.req.method, resource: p.resource })),
  );
  for (const p of planned) {
    if (!p.resource) continue;
    const versionId = (p.current?.versionId ?? 0) + 1;
    p.resource.meta = { ...(p.resource.meta ?? {}), versionId: String(versionId), lastUpdated };
  }

  const local = new Map(planned.filter((p) => p.resource).map((p) => [`${p.req.type}/${p.id}`, p.resource as Resource]));
  const resolver = async (reference: string): Promise<Resource | undefined> => {
    const key = reference.replace(/\/_history\/.*$/, '');
    if (local.has(key)) return local.get(key);
    const [type, id] = key.split('/');
    if (!type || !id) return undefined;
    const row = await readCurrent(q, type, id);
    return row && !row.deleted ? parseStored(row) : undefined;
  };
  if (deps.workflow) {
    const workflow = deps.workflow;
    const owned = planned.filter((p) => workflow.types.has(p.req.type));
    if (owned.length > 0) {
      const gateway: RequestContext = { ...ctx, scopes: undefined, institution: undefined, subordinates: undefined };
      await workflow.check(
        q,
        ctx,
        owned.map((p) => ({ type: p.req.type, method: p.req.method, current: p.current && !p.current.deleted ? parseStored(p.current) : undefined, next: p.resource, where: where(p.req) })),
        resolver,
        (requests) => executeWrites(q, requests, gateway, { validator: deps.validator }),
      );
    }
  }
  if (deps.identity) for (const p of planned) if (p.resource?.resourceType === 'Patient') deps.identity.prepare(p.resource);
  const unchanged = planned.filter((p) => isUnchanged(p, deps.workflow));
  for (const p of unchanged) {
    const row = p.current as StoredRow;
    p.result = { status: 200, type: p.req.type, id: p.id, versionId: row.versionId, lastUpdated: row.lastUpdated, resource: parseStored(row), noop: true };
  }
  const writing = planned.filter((p) => !p.result);
  for (const p of writing) {
    if (p.resource) await step(() => deps.validator.assertValid(p.resource as Resource, resolver), p);
  }

  await writeVersions(
    q,
    writing.map((p) => ({
      rid: p.current?.rid,
      type: p.req.type,
      id: p.id as string,
      versionId: (p.current?.versionId ?? 0) + 1,
      lastUpdated,
      method: p.req.method,
      resource: p.req.method === 'DELETE' ? undefined : p.resource,
    })),
  );

  const audits: AccessRecord[] = [];
  for (const p of writing) {
    const versionId = (p.current?.versionId ?? 0) + 1;
    const created = !p.current || p.current.deleted;
    p.result = {
      status: p.req.method === 'DELETE' ? 200 : created ? 201 : 200,
      type: p.req.type,
      id: p.id,
      versionId,
      lastUpdated,
      resource: p.resource,
      noop: false,
    };
    const subject = p.resource ?? (p.current?.content ? parseStored(p.current) : undefined);
    audits.push({
      interaction: p.req.method === 'DELETE' ? 'delete' : p.req.method === 'PATCH' ? 'patch' : created ? 'create' : 'update',
      outcome: '0',
      resources: [`${p.req.type}/${p.id}/_history/${versionId}`],
      patients: subject ? patientsOf(subject) : [],
    });
  }
  // An unchanged update is still the client's update: audited against the version it left current.
  for (const p of unchanged) {
    audits.push({ interaction: 'update', outcome: '0', resources: [`${p.req.type}/${p.id}/_history/${p.result?.versionId}`], patients: p.resource ? patientsOf(p.resource) : [] });
  }
  await recordAccess(q, ctx, audits);
  if (writing.length > 0) {
    await deps.hooks?.afterStore(
      q,
      writing.map((p) => ({
        type: p.req.type,
        id: p.id as string,
        versionId: (p.current?.versionId ?? 0) + 1,
        action: p.req.method === 'DELETE' ? 'delete' : !p.current || p.current.deleted ? 'create' : 'update',
        resource: p.resource,
        previous: p.current && !p.current.deleted ? parseStored(p.current) : undefined,
      })),
      lastUpdated,
    );
  }
  const patients = writing.filter((p) => p.req.type === 'Patient');
  if (deps.identity && patients.length > 0) {
    // What linking writes (Persons, review Tasks) is the gateway's own work, attributed to this client.
    const gateway: RequestContext = { ...ctx, scopes: undefined, institution: undefined, subordinates: undefined };
    await deps.identity.link(
      q,
      { stored: patients.flatMap((p) => (p.resource ? [p.resource] : [])), deleted: patients.filter((p) => p.req.method === 'DELETE').map((p) => p.id as string) },
      ctx,
      (requests) => executeWrites(q, requests, gateway, { validator: deps.validator }),
    );
  }
  return plan.map((p) => p.result as WriteResult);
}
