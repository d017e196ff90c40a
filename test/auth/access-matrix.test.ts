/**
 * Every client role of the demo community × every interaction type: allowed or refused as the
 * table says; a refused request changes nothing and is audited as a failure.
 */
import t from 'tap';
import type { InjectOptions } from 'fastify';
import type { Observation } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS, type TestApp } from '../helpers/app.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';

const CLIENTS = ['county-his', 'township1-his', 'village1-his', 'regional-platform', 'auditor', 'admin', 'none'] as const;
type Client = (typeof CLIENTS)[number];

const HBA1C = { coding: [{ system: 'http://loinc.org', code: '4548-4' }] };
const obs = (): Observation => ({ resourceType: 'Observation', status: 'final', code: HBA1C, valueQuantity: { value: 6.5, unit: '%' } });

interface Fixture {
  countyObs: Observation;
  villageObs: Observation;
}

type Case = (f: Fixture, fresh: () => Promise<Observation>) => Promise<InjectOptions>;

const CASES: Record<string, Case> = {
  metadata: async () => ({ method: 'GET', url: '/fhir/metadata' }),
  read: async (f) => ({ method: 'GET', url: `/fhir/Observation/${f.countyObs.id}` }),
  vread: async (f) => ({ method: 'GET', url: `/fhir/Observation/${f.countyObs.id}/_history/1` }),
  search: async () => ({ method: 'GET', url: '/fhir/Observation?code=http://loinc.org|4548-4' }),
  'search-include': async () => ({ method: 'GET', url: '/fhir/Observation?_revinclude=Provenance:target' }),
  'history-instance': async (f) => ({ method: 'GET', url: `/fhir/Observation/${f.countyObs.id}/_history` }),
  'history-type': async () => ({ method: 'GET', url: '/fhir/Observation/_history' }),
  create: async () => ({ method: 'POST', url: '/fhir/Observation', headers: FHIR_HEADERS, payload: obs() }),
  'update-county-data': async (f) => ({ method: 'PUT', url: `/fhir/Observation/${f.countyObs.id}`, headers: FHIR_HEADERS, payload: { ...obs(), id: f.countyObs.id, meta: f.countyObs.meta } }),
  'patch-county-data': async (f) => ({
    method: 'PATCH',
    url: `/fhir/Observation/${f.countyObs.id}`,
    headers: { 'content-type': 'application/json-patch+json' },
    payload: [{ op: 'replace', path: '/status', value: 'amended' }],
  }),
  'update-village-data': async (f) => ({ method: 'PUT', url: `/fhir/Observation/${f.villageObs.id}`, headers: FHIR_HEADERS, payload: { ...obs(), id: f.villageObs.id, meta: f.villageObs.meta } }),
  'delete-county-data': async (_f, fresh) => ({ method: 'DELETE', url: `/fhir/Observation/${(await fresh()).id}` }),
  transaction: async () => ({
    method: 'POST',
    url: '/fhir',
    headers: FHIR_HEADERS,
    payload: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: obs(), request: { method: 'POST', url: 'Observation' } }] },
  }),
  validate: async () => ({ method: 'POST', url: '/fhir/Observation/$validate', headers: FHIR_HEADERS, payload: obs() }),
  'audit-search': async () => ({ method: 'GET', url: '/fhir/AuditEvent?action=C' }),
  'audit-verify': async () => ({ method: 'GET', url: '/fhir/AuditEvent/$verify' }),
  'audit-write': async () => ({ method: 'POST', url: '/fhir/AuditEvent', headers: FHIR_HEADERS, payload: { resourceType: 'AuditEvent' } }),
  'audit-write-in-bundle': async () => ({
    method: 'POST',
    url: '/fhir',
    headers: FHIR_HEADERS,
    payload: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'AuditEvent' }, request: { method: 'POST', url: 'AuditEvent' } }] },
  }),
  metrics: async () => ({ method: 'GET', url: '/metrics' }),
};

//                                county township village platform auditor admin  none
const EXPECTED: Record<string, readonly number[]> = {
  metadata:              [200,   200,     200,    200,     200,    200,   200],
  read:                  [200,   200,     200,    200,     403,    200,   401],
  vread:                 [200,   200,     200,    200,     403,    200,   401],
  search:                [200,   200,     200,    200,     403,    200,   401],
  'search-include':      [200,   200,     200,    200,     403,    200,   401],
  'history-instance':    [200,   200,     200,    200,     403,    200,   401],
  'history-type':        [200,   200,     200,    200,     403,    200,   401],
  create:                [201,   201,     201,    403,     403,    201,   401],
  'update-county-data':  [200,   403,     403,    403,     403,    200,   401],
  'patch-county-data':   [200,   403,     403,    403,     403,    200,   401],
  // The county HIS may write for the institutions under it; a township without that right may not.
  'update-village-data': [200,   403,     200,    403,     403,    200,   401],
  'delete-county-data':  [204,   403,     403,    403,     403,    204,   401],
  transaction:           [200,   200,     200,    403,     403,    200,   401],
  validate:              [200,   200,     200,    200,     403,    200,   401],
  'audit-search':        [403,   403,     403,    403,     200,    403,   401],
  'audit-verify':        [403,   403,     403,    403,     200,    403,   401],
  'audit-write':         [405,   405,     405,    405,     405,    405,   401],
  'audit-write-in-bundle': [405, 405,     405,    405,     405,    405,   401],
  metrics:               [200,   200,     200,    200,     200,    200,   401],
};

async function versions(ta: TestApp): Promise<number> {
  return (await ta.tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource_version')).rows[0].n;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    await loadDemoCommunity((bundle) => processBundle(ta.fhir.repository, bundle, SYSTEM_CONTEXT, { minimal: true }));
    const tokens = new Map<Client, string>();
    for (const c of CLIENTS) if (c !== 'none') tokens.set(c, await ta.token(c));
    const as = (c: Client, req: InjectOptions) =>
      c === 'none' ? ta.anonymous(req) : ta.app.inject({ ...req, headers: { ...(req.headers ?? {}), authorization: `Bearer ${tokens.get(c)}` } });

    const create = async (c: Client): Promise<Observation> => {
      const r = await as(c, { method: 'POST', url: '/fhir/Observation', headers: FHIR_HEADERS, payload: obs() });
      if (r.statusCode !== 201) throw new Error(`setup failed: ${r.body}`);
      return r.json() as Observation;
    };
    const fixture: Fixture = { countyObs: await create('county-his'), villageObs: await create('village1-his') };
    t.match(fixture.countyObs.meta?.tag, [{ code: '1233042447101234XX' }], 'writes are tagged with the writer institution');
    t.equal(fixture.countyObs.meta?.source, 'urn:county-hie:client:county-his');

    for (const [name, expected] of Object.entries(EXPECTED)) {
      t.test(name, async (t) => {
        for (let i = 0; i < CLIENTS.length; i++) {
          const client = CLIENTS[i];
          const req = await CASES[name](fixture, () => create('county-his'));
          const before = await versions(ta);
          const r = await as(client, req);
          t.equal(r.statusCode, expected[i], `${client}: ${r.statusCode} ${r.statusCode >= 400 ? r.body.slice(0, 160) : ''}`);
          if (r.statusCode >= 400) {
            t.equal(await versions(ta), before, `${client}: a refused request writes nothing`);
            t.equal(r.json().resourceType, 'OperationOutcome', `${client}: OperationOutcome`);
          }
          if (r.statusCode === 403) {
            const { rows } = await ta.tdb.db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM audit_event WHERE outcome = '4' AND client_id = $1 AND recorded > now() - interval '1 minute'`,
              [client],
            );
            t.ok(rows[0].n > 0, `${client}: the refusal is audited`);
          }
        }
      });
    }
  });
}
