/**
 * `Patient/{id}/$everything` (FHIR R4 Patient-everything) over the whole person: every local
 * Patient linked to the same golden record, at every member institution. HTTP glue only; the
 * record is assembled in src/ehr.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { OperationDefinition } from '@medplum/fhirtypes';
import { GatewayError } from '../../errors.js';
import { FHIR_BASE } from '../systems.js';
import { restContext, FHIR_JSON } from '../routes.js';
import { assertCan, can, forbidden } from '../../auth/policy.js';
import type { RequestContext } from '../context.js';
import { isKnownResourceType } from '../definitions.js';
import type { Config } from '../../config.js';
import type { Db } from '../../store/index.js';
import { recordsOfPatient } from '../../mpi/index.js';
import { everythingBundle, everythingPage, markedEntries, samePerson, summaryDocument, type EverythingQuery } from '../../ehr/index.js';
import { patientAccessLog, recordAccess } from '../../audit/index.js';
import type { RecordGuard } from '../repository.js';

export const EVERYTHING_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'Patient-everything',
  url: `${FHIR_BASE}/OperationDefinition/Patient-everything`,
  version: '0.1.0',
  name: 'Everything',
  title: "The person's whole record across the community",
  status: 'active',
  kind: 'operation',
  description:
    'Every resource in the Patient compartment of every local Patient linked to the same person (golden record), from every member institution, ' +
    'each entry marked with its source institution; filtered by consent. Paged with a stable cursor.',
  affectsState: false,
  code: 'everything',
  base: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
  resource: ['Patient'],
  system: false,
  type: false,
  instance: true,
  parameter: [
    { name: 'start', use: 'in', min: 0, max: '1', type: 'date', documentation: 'Care date from (resources without a care date are kept).' },
    { name: 'end', use: 'in', min: 0, max: '1', type: 'date', documentation: 'Care date up to.' },
    { name: '_since', use: 'in', min: 0, max: '1', type: 'instant', documentation: 'Only resources changed since.' },
    { name: '_type', use: 'in', min: 0, max: '*', type: 'code', documentation: 'Only these resource types (comma-separated).' },
    { name: '_count', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Page size.' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset Bundle, paged.' },
  ],
};

type Query = Record<string, string | string[] | undefined>;

function one(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) {
    if (v.length > 1) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} is given more than once`, { expression: name });
    return v[0];
  }
  return v;
}

function parseQuery(q: Query, config: Config): EverythingQuery {
  const known = new Set(['start', 'end', '_since', '_type', '_count', '_cursor', '_format']);
  for (const k of Object.keys(q)) if (!known.has(k)) throw new GatewayError('GW_ERR_BAD_REQUEST', `Unknown parameter ${k} for $everything`, { expression: k });
  const types = ([] as string[]).concat(q._type ?? []).flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  for (const t of types) if (!isKnownResourceType(t)) throw new GatewayError('GW_ERR_BAD_REQUEST', `_type: unknown resource type "${t}"`, { expression: '_type' });
  const countRaw = one(q, '_count');
  const count = countRaw === undefined ? Math.max(config.defaultPageSize, 100) : Number(countRaw);
  if (!Number.isSafeInteger(count) || count < 1) throw new GatewayError('GW_ERR_BAD_REQUEST', `_count must be a positive whole number`, { expression: '_count' });
  const cursorRaw = one(q, '_cursor');
  const cursor = cursorRaw === undefined ? undefined : Number(cursorRaw);
  if (cursor !== undefined && (!Number.isSafeInteger(cursor) || cursor < 0)) throw new GatewayError('GW_ERR_BAD_REQUEST', 'Invalid _cursor', { expression: '_cursor' });
  return { since: one(q, '_since'), start: one(q, 'start'), end: one(q, 'end'), types, count: Math.min(count, config.maxPageSize), cursor };
}

export const ACCESS_LOG_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'Patient-access-log',
  url: `${FHIR_BASE}/OperationDefinition/Patient-access-log`,
  version: '0.1.0',
  name: 'AccessLog',
  title: 'Who accessed my record',
  status: 'active',
  kind: 'operation',
  description:
    "The resident's access log: every recorded access to any of the person's records, newest first (when, what, which system, institution and user, purpose, outcome). " +
    "For the resident's own app (patient/ scopes and the resident in the token) and for auditors.",
  affectsState: false,
  code: 'access-log',
  resource: ['Patient'],
  system: false,
  type: false,
  instance: true,
  parameter: [
    { name: '_count', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Page size (default 50).' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset of AuditEvents.' },
  ],
};

export const SUMMARY_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'Patient-summary',
  url: `${FHIR_BASE}/OperationDefinition/Patient-summary`,
  version: '0.1.0',
  name: 'Summary',
  title: 'Patient summary for a referral',
  status: 'active',
  kind: 'operation',
  description:
    'A document Bundle (Composition first, after the International Patient Summary) of the whole person across the community: active problems, allergies, ' +
    'current medications, the last result of each test, recent encounters and recent imaging; each entry marked with its source institution; filtered by consent.',
  affectsState: false,
  code: 'summary',
  base: 'http://hl7.org/fhir/uv/ips/OperationDefinition/summary',
  resource: ['Patient'],
  system: false,
  type: false,
  instance: true,
  parameter: [{ name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A document Bundle.' }],
};

const SUMMARY_TYPES = ['Condition', 'AllergyIntolerance', 'MedicationRequest', 'MedicationStatement', 'Observation', 'Encounter', 'ImagingStudy', 'DiagnosticReport'];
/** Most resources read to build one summary. */
const SUMMARY_LIMIT = 5000;

/** A resident's app may act only on the resident's own person. */
async function assertOwnRecord(db: Db, ctx: RequestContext, patientId: string): Promise<void> {
  if (ctx.patient === undefined) return;
  if (!(await samePerson(db, ctx.patient)).has(patientId)) throw forbidden(`Patient/${patientId} is not the resident's own record`, `Patient/${patientId}`);
}

export async function registerEverythingRoutes(app: FastifyInstance, deps: { config: Config; db: Db; guard?: RecordGuard }): Promise<void> {
  const { db, config, guard } = deps;
  const base = `${config.baseUrl}/fhir`;
  const handler = async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const ctx = restContext(req);
    assertCan(ctx, 'Patient', 'r');
    const query = parseQuery(req.query as Query, config);
    await assertOwnRecord(db, ctx, req.params.id);
    const records = await recordsOfPatient(db, req.params.id);
    if (!records) throw new GatewayError('GW_ERR_NOT_FOUND', `Patient/${req.params.id} not found`, { expression: `Patient/${req.params.id}` });
    const page = await everythingPage(db, records.patients.map((p) => p.id as string), query, (t) => can(ctx, t, 'r'));
    const verdict = guard ? await guard.check(db, ctx, page.resources) : { withheld: new Set(), revealed: [] };
    const shown = page.resources.filter((r) => !verdict.withheld.has(r));
    await guard?.recordBreakGlass(db, ctx, verdict.revealed);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query as Query)) if (k !== '_cursor') for (const x of ([] as string[]).concat(v ?? [])) params.append(k, x);
    const self = `${base}/Patient/${req.params.id}/$everything${params.size ? `?${params}` : ''}`;
    if (page.next !== undefined) params.set('_cursor', String(page.next));
    const bundle = await everythingBundle(
      db,
      { person: records.person, patients: records.patients },
      { ...page, resources: shown },
      query.cursor === undefined,
      { self, next: page.next !== undefined ? `${base}/Patient/${req.params.id}/$everything?${params}` : undefined, baseUrl: base },
    );
    await recordAccess(db, ctx, [
      {
        interaction: 'operation',
        operation: '$everything',
        outcome: '0',
        resources: shown.map((r) => `${r.resourceType}/${r.id}`),
        patients: records.patients.map((p) => `Patient/${p.id}`),
      },
    ]);
    return bundle;
  };
  app.get<{ Params: { id: string } }>('/Patient/:id/$access-log', { config: { interaction: 'operation' } }, async (req, reply) => {
    const ctx = restContext(req);
    if (ctx.patient === undefined) assertCan(ctx, 'AuditEvent', 'r');
    await assertOwnRecord(db, ctx, req.params.id);
    const q = req.query as Query;
    const countRaw = one(q, '_count');
    const count = countRaw === undefined ? 50 : Number(countRaw);
    if (!Number.isSafeInteger(count) || count < 1) throw new GatewayError('GW_ERR_BAD_REQUEST', '_count must be a positive whole number', { expression: '_count' });
    const before = one(q, '_before');
    if (before !== undefined && Number.isNaN(Date.parse(before))) throw new GatewayError('GW_ERR_BAD_REQUEST', '_before must be an instant', { expression: '_before' });
    const records = await recordsOfPatient(db, req.params.id);
    if (!records) throw new GatewayError('GW_ERR_NOT_FOUND', `Patient/${req.params.id} not found`, { expression: `Patient/${req.params.id}` });
    const refs = records.patients.map((p) => `Patient/${p.id}`);
    const page = await patientAccessLog(db, refs, Math.min(count, 500), before);
    const self = `${base}/Patient/${req.params.id}/$access-log`;
    const bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      link: [
        { relation: 'self', url: self },
        ...(page.next ? [{ relation: 'next', url: `${self}?_count=${count}&_before=${encodeURIComponent(page.next)}` }] : []),
      ],
      entry: page.events.map((e) => ({ fullUrl: `${base}/AuditEvent/${e.id}`, resource: e, search: { mode: 'match' } })),
    };
    await recordAccess(db, ctx, [{ interaction: 'operation', operation: '$access-log', outcome: '0', resources: [], patients: refs }]);
    return reply.code(200).header('content-type', FHIR_JSON).send(bundle);
  });
  app.get<{ Params: { id: string } }>('/Patient/:id/$summary', { config: { interaction: 'operation' } }, async (req, reply) => {
    const ctx = restContext(req);
    assertCan(ctx, 'Patient', 'r');
    for (const k of Object.keys(req.query as Query)) if (k !== '_format') throw new GatewayError('GW_ERR_BAD_REQUEST', `Unknown parameter ${k} for $summary`, { expression: k });
    await assertOwnRecord(db, ctx, req.params.id);
    const records = await recordsOfPatient(db, req.params.id);
    if (!records) throw new GatewayError('GW_ERR_NOT_FOUND', `Patient/${req.params.id} not found`, { expression: `Patient/${req.params.id}` });
    const ids = records.patients.map((p) => p.id as string);
    const resources = [];
    let cursor: number | undefined;
    do {
      const page = await everythingPage(db, ids, { types: SUMMARY_TYPES, count: 1000, cursor }, (t) => can(ctx, t, 'r'));
      resources.push(...page.resources);
      cursor = page.next;
    } while (cursor !== undefined && resources.length < SUMMARY_LIMIT);
    const verdict = guard ? await guard.check(db, ctx, resources) : { withheld: new Set(), revealed: [] };
    const shown = resources.filter((r) => !verdict.withheld.has(r));
    const { bundle, cited } = summaryDocument({ person: records.person, patients: records.patients, subject: req.params.id }, shown, { recent: 5, results: 20, baseUrl: base });
    await guard?.recordBreakGlass(db, ctx, verdict.revealed.filter((r) => cited.includes(r)));
    bundle.entry = (await markedEntries(db, cited, base)).map(({ search: _search, ...e }) => e);
    await recordAccess(db, ctx, [
      { interaction: 'operation', operation: '$summary', outcome: '0', resources: cited.filter((r) => r.resourceType !== 'Composition').map((r) => `${r.resourceType}/${r.id}`), patients: ids.map((i) => `Patient/${i}`) },
    ]);
    return reply.code(200).header('content-type', FHIR_JSON).send(bundle);
  });
  app.get<{ Params: { id: string } }>('/Patient/:id/$everything', { config: { interaction: 'operation' } }, async (req, reply) =>
    reply.code(200).header('content-type', FHIR_JSON).send(await handler(req)),
  );
}
