import t from 'tap';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { parseEntryUrl } from '../../src/fhir/bundle.js';

const MRN = 'https://fhir.county-hie.cn/mrn/township-1';

/** A transaction of one Patient and n-1 Observations referring to it by urn:uuid. */
function labTransaction(n: number, mrn: string): Bundle {
  const pid = 'urn:uuid:0c3a6f1e-0000-4000-8000-000000000001';
  const entry: BundleEntry[] = [
    {
      fullUrl: pid,
      resource: { resourceType: 'Patient', identifier: [{ system: MRN, value: mrn }], name: [{ family: '李', given: ['四'] }] },
      request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${mrn}` },
    },
  ];
  for (let i = 1; i < n; i++) {
    entry.push({
      fullUrl: `urn:uuid:0c3a6f1e-0000-4000-8000-${String(i).padStart(12, '0')}a`,
      resource: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
        subject: { reference: pid },
        valueQuantity: { value: 5 + i / 10, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
      },
      request: { method: 'POST', url: 'Observation' },
    });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

t.test('entry URLs', async (t) => {
  const base = 'http://x/fhir';
  t.same(parseEntryUrl('Patient/1', base), { type: 'Patient', id: '1', history: false, query: undefined });
  t.same(parseEntryUrl('http://x/fhir/Patient/1/_history/2', base), { type: 'Patient', id: '1', versionId: '2', history: false, query: undefined });
  t.same(parseEntryUrl('Patient?identifier=a|b', base), { type: 'Patient', history: false, query: 'identifier=a|b' });
  t.same(parseEntryUrl('Patient/_history', base), { type: 'Patient', history: true, query: undefined });
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const count = async (type: string) => (await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource WHERE type = $1 AND NOT deleted`, [type])).rows[0].n;

    t.test('a 30-entry transaction with urn:uuid references', async (t) => {
      const r = await app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: labTransaction(30, 'T30') });
      t.equal(r.statusCode, 200, r.body.slice(0, 300));
      const resp = r.json() as Bundle;
      t.equal(resp.type, 'transaction-response');
      t.equal(resp.entry?.length, 30);
      t.ok(resp.entry?.every((e) => e.response?.status === '201 Created'));
      const pid = (resp.entry?.[0].resource as Patient).id;
      for (const e of resp.entry?.slice(1) ?? []) {
        t.equal((e.resource as Observation).subject?.reference, `Patient/${pid}`);
      }
      t.match(resp.entry?.[1].response?.location, /^Observation\/[^/]+\/_history\/1$/);
      t.equal(await count('Observation'), 29);

      const again = await app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: labTransaction(2, 'T30') });
      const a = again.json() as Bundle;
      t.equal(a.entry?.[0].response?.status, '200 OK', 'conditional create matched the patient');
      t.equal((a.entry?.[1].resource as Observation).subject?.reference, `Patient/${pid}`, 'urn:uuid points at the matched patient');
    });

    t.test('all or nothing: one bad entry rolls back the whole transaction', async (t) => {
      const obsBefore = await count('Observation');
      const patBefore = await count('Patient');
      const bundle = labTransaction(10, 'ROLLBACK');
      (bundle.entry?.[7].resource as Observation).status = 'not-a-status' as Observation['status'];
      const r = await app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: bundle });
      t.equal(r.statusCode, 400, r.body.slice(0, 300));
      const o = r.json();
      t.equal(o.resourceType, 'OperationOutcome');
      t.ok(
        o.issue.some((i: { expression?: string[] }) => i.expression?.some((e) => e.startsWith('Bundle.entry[7]'))),
        `failing entry located: ${JSON.stringify(o.issue.map((i: { expression?: string[] }) => i.expression))}`,
      );
      t.equal(await count('Observation'), obsBefore);
      t.equal(await count('Patient'), patBefore);
    });

    t.test('conditional references resolve to exactly one match', async (t) => {
      await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', identifier: [{ system: MRN, value: 'COND1' }] } });
      const ok = await app.inject({
        method: 'POST',
        url: '/fhir',
        headers: FHIR_HEADERS,
        payload: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient?identifier=${MRN}|COND1` } },
              request: { method: 'POST', url: 'Observation' },
            },
          ],
        },
      });
      t.equal(ok.statusCode, 200, ok.body.slice(0, 300));
      t.match((ok.json() as Bundle).entry?.[0].resource, { subject: { reference: /^Patient\/[A-Za-z0-9-]+$/ } });
      const missing = await app.inject({
        method: 'POST',
        url: '/fhir',
        headers: FHIR_HEADERS,
        payload: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient?identifier=${MRN}|NOBODY` } },
              request: { method: 'POST', url: 'Observation' },
            },
          ],
        },
      });
      t.equal(missing.statusCode, 404);
      t.same(missing.json().issue[0].expression, ['Bundle.entry[0].resource.subject.reference']);
    });

    t.test('PUT, PATCH, DELETE and GET entries', async (t) => {
      const p = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MIX1' }] } })).json() as Patient;
      const q = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MIX2' }] } })).json() as Patient;
      const s = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MIX3' }] } })).json() as Patient;
      const patch = Buffer.from(JSON.stringify([{ op: 'add', path: '/active', value: true }])).toString('base64');
      const r = await app.inject({
        method: 'POST',
        url: '/fhir',
        headers: FHIR_HEADERS,
        payload: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { request: { method: 'GET', url: `Patient/${p.id}` } },
            { resource: { ...p, gender: 'female' }, request: { method: 'PUT', url: `Patient/${p.id}`, ifMatch: 'W/"1"' } },
            { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patch }, request: { method: 'PATCH', url: `Patient/${s.id}` } },
            { request: { method: 'GET', url: `Patient/${s.id}` } },
            { request: { method: 'DELETE', url: `Patient/${q.id}` } },
          ],
        },
      });
      t.equal(r.statusCode, 200, r.body.slice(0, 400));
      const e = (r.json() as Bundle).entry ?? [];
      t.equal((e[0].resource as Patient).meta?.versionId, '2', 'GET runs after the writes');
      t.equal((e[0].resource as Patient).gender, 'female');
      t.equal((e[3].resource as Patient).active, true, 'patched');
      const gone = await app.inject({ method: 'GET', url: `/fhir/Patient/${q.id}` });
      t.equal(gone.statusCode, 410);

      const twice = await app.inject({
        method: 'POST',
        url: '/fhir',
        headers: FHIR_HEADERS,
        payload: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: { ...p, meta: undefined, gender: 'male' }, request: { method: 'PUT', url: `Patient/${p.id}` } },
            { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patch }, request: { method: 'PATCH', url: `Patient/${p.id}` } },
          ],
        },
      });
      t.equal(twice.statusCode, 400, 'one resource written twice fails the transaction');
      t.match(twice.json().issue[0].diagnostics, /more than one entry/);
    });

    t.test('batch: each entry on its own', async (t) => {
      const r = await app.inject({
        method: 'POST',
        url: '/fhir',
        headers: FHIR_HEADERS,
        payload: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            { resource: { resourceType: 'Patient', identifier: [{ system: MRN, value: 'B1' }] }, request: { method: 'POST', url: 'Patient' } },
            { resource: { resourceType: 'Patient', gender: 'nope' }, request: { method: 'POST', url: 'Patient' } },
            { request: { method: 'GET', url: 'Patient/not-there' } },
          ],
        },
      });
      t.equal(r.statusCode, 200);
      const e = (r.json() as Bundle).entry ?? [];
      t.equal(e[0].response?.status, '201 Created');
      t.equal(e[1].response?.status, '400');
      t.equal(e[1].response?.outcome?.resourceType, 'OperationOutcome');
      t.equal(e[2].response?.status, '404');
    });

    t.test('malformed bundles', async (t) => {
      const cases: [unknown, string][] = [
        [{ resourceType: 'Bundle', type: 'collection' }, 'Bundle.type'],
        [{ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' } }] }, 'Bundle.entry[0].request'],
        [{ resourceType: 'Patient' }, 'resourceType'],
        [
          {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
              { fullUrl: 'urn:uuid:1', resource: { resourceType: 'Basic', code: { text: 'a' } }, request: { method: 'POST', url: 'Basic' } },
              { fullUrl: 'urn:uuid:1', resource: { resourceType: 'Basic', code: { text: 'b' } }, request: { method: 'POST', url: 'Basic' } },
            ],
          },
          'Bundle.entry[1].fullUrl',
        ],
      ];
      for (const [payload, expr] of cases) {
        const r = await app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: payload as object });
        t.equal(r.statusCode, 400, r.body.slice(0, 200));
        t.same(r.json().issue[0].expression, [expr]);
      }
    });
  });
}
